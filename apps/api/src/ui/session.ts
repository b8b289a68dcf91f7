import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Dashboard sessions without server state: the cookie is `<expiry>.<operator>.<nonce>.<mac>`, the mac an
 * HMAC-SHA256 of the rest under the session secret (IX_UI_SESSION_SECRET, else random per process, so a
 * restart signs everyone out). The CSRF token of a session is an HMAC of its nonce: every form carries
 * it, and a page of another origin can neither read nor compute it.
 */

export const SESSION_COOKIE = "ix_session";
/** How long a sign-in lasts. */
export const SESSION_SECONDS = 12 * 60 * 60;

export interface Session {
  operator: string;
  csrf: string;
}

function mac(secret: Buffer, text: string): string {
  return createHmac("sha256", secret).update(text, "utf8").digest("base64url");
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class SessionKeeper {
  private readonly secret: Buffer;

  constructor(secret: string | undefined) {
    this.secret = secret === undefined ? randomBytes(32) : Buffer.from(secret, "utf8");
  }

  /** A new session's cookie value for `operator`. */
  issue(operator: string, nowMs = Date.now()): string {
    const expiry = Math.floor(nowMs / 1000) + SESSION_SECONDS;
    const body = `${expiry}.${Buffer.from(operator, "utf8").toString("base64url")}.${randomBytes(16).toString("base64url")}`;
    return `${body}.${mac(this.secret, body)}`;
  }

  /** The session a cookie value proves, or null when it is forged, garbled or expired. */
  verify(value: string | undefined, nowMs = Date.now()): Session | null {
    const parts = value?.split(".");
    if (parts?.length !== 4) return null;
    const [expiry, operator, nonce, given] = parts as [string, string, string, string];
    if (!same(mac(this.secret, `${expiry}.${operator}.${nonce}`), given)) return null;
    if (!/^\d+$/.test(expiry) || Number(expiry) * 1000 <= nowMs) return null;
    return { operator: Buffer.from(operator, "base64url").toString("utf8"), csrf: this.csrfFor(nonce) };
  }

  /** The CSRF token of a session by its nonce; the open dashboard (no keys) uses one fixed nonce. */
  csrfFor(nonce: string): string {
    return mac(this.secret, `csrf.${nonce}`);
  }

  csrfMatches(expected: string, given: unknown): boolean {
    return typeof given === "string" && same(expected, given);
  }
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie value: HttpOnly, SameSite=Strict, only under /ui, Secure when the page came over https. */
export function sessionCookie(value: string, { secure, maxAgeSeconds }: { secure: boolean; maxAgeSeconds: number }): string {
  return `${SESSION_COOKIE}=${value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? "; Secure" : ""}`;
}
