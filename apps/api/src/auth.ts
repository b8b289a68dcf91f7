import { createHash, timingSafeEqual } from "node:crypto";
import type { ApiKey } from "./config.ts";

/**
 * Who is calling: a client proven by its key (its own jobs only), an operator proven by an admin key
 * (every client's jobs), or anyone when the API runs without keys (every job, on loopback only).
 */
export type Caller = { kind: "client"; clientId: string } | { kind: "operator"; name: string } | { kind: "anonymous" };

export type Authentication = { ok: true; caller: Caller } | { ok: false; reason: "missing" | "unknown" };

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * Maps a presented key to its caller. Keys are compared as SHA-256 digests with timingSafeEqual, against
 * every configured key (clients' and operators') without stopping at a match, so neither the key's
 * content, its position nor which list holds it shows in the response time. Null: no configured key.
 */
export function createKeyLookup(keys: { apiKeys: readonly ApiKey[]; adminKeys: readonly ApiKey[] }): (key: string) => Caller | null {
  const known = [
    ...keys.apiKeys.map(({ clientId, key }) => ({ caller: { kind: "client", clientId } as Caller, digest: digest(key) })),
    ...keys.adminKeys.map(({ clientId: name, key }) => ({ caller: { kind: "operator", name } as Caller, digest: digest(key) })),
  ];
  return (key) => {
    const presented = digest(key);
    let caller: Caller | null = null;
    for (const candidate of known) {
      if (timingSafeEqual(candidate.digest, presented) && caller === null) caller = candidate.caller;
    }
    return caller;
  };
}

/**
 * Maps `Authorization: Bearer <key>` to its caller; without any key configured, everyone is anonymous.
 */
export function createAuthenticator(keys: { apiKeys: readonly ApiKey[]; adminKeys: readonly ApiKey[] }): (authorization: string | undefined) => Authentication {
  if (keys.apiKeys.length === 0 && keys.adminKeys.length === 0) return () => ({ ok: true, caller: { kind: "anonymous" } });
  const lookup = createKeyLookup(keys);
  return (authorization) => {
    const match = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!match?.[1]) return { ok: false, reason: "missing" };
    const caller = lookup(match[1]);
    return caller === null ? { ok: false, reason: "unknown" } : { ok: true, caller };
  };
}

/** The client whose jobs the caller may see and act on; undefined: every client's (an operator, or no keys). */
export function clientScope(caller: Caller): string | undefined {
  return caller.kind === "client" ? caller.clientId : undefined;
}
