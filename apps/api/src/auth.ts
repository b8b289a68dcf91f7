import { createHash, timingSafeEqual } from "node:crypto";
import type { ApiKey } from "./config.ts";

/** Who is calling: a client proven by its key, or anyone when the API runs without keys. */
export type Caller = { kind: "client"; clientId: string } | { kind: "anonymous" };

export type Authentication = { ok: true; caller: Caller } | { ok: false; reason: "missing" | "unknown" };

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * Maps `Authorization: Bearer <key>` to a client id. Keys are
 * compared as SHA-256 digests with timingSafeEqual, against every configured
 * key without stopping at a match, so neither the key's content nor its
 * position in the list shows in the response time.
 */
export function createAuthenticator(keys: readonly ApiKey[]): (authorization: string | undefined) => Authentication {
  if (keys.length === 0) return () => ({ ok: true, caller: { kind: "anonymous" } });
  const known = keys.map(({ clientId, key }) => ({ clientId, digest: digest(key) }));
  return (authorization) => {
    const match = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!match?.[1]) return { ok: false, reason: "missing" };
    const presented = digest(match[1]);
    let clientId: string | null = null;
    for (const candidate of known) {
      if (timingSafeEqual(candidate.digest, presented) && clientId === null) clientId = candidate.clientId;
    }
    return clientId === null ? { ok: false, reason: "unknown" } : { ok: true, caller: { kind: "client", clientId } };
  };
}
