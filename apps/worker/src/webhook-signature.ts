import { createHmac } from "node:crypto";

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com).
 * The key is `whsec_` + base64 of the secret bytes; the signature is
 * `v1,` + base64(HMAC-SHA256(secret bytes, `${id}.${timestamp}.${body}`)).
 */
const PREFIX = "whsec_";
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Below this a key is guessable; Standard Webhooks recommends 24–64 bytes. */
export const MIN_SECRET_BYTES = 16;

export type ParsedSecret = { ok: true; key: Buffer } | { ok: false; error: string };

/** Decodes a `whsec_…` key, or says what is wrong with it (never echoing the key). */
export function parseWebhookSecret(value: string): ParsedSecret {
  if (!value.startsWith(PREFIX)) return { ok: false, error: `must start with "${PREFIX}"` };
  const encoded = value.slice(PREFIX.length);
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    return { ok: false, error: `must be "${PREFIX}" followed by standard base64 (A-Z a-z 0-9 + /, padded with =)` };
  }
  const key = Buffer.from(encoded, "base64");
  if (key.length < MIN_SECRET_BYTES) {
    return { ok: false, error: `must encode at least ${MIN_SECRET_BYTES} bytes, got ${key.length}` };
  }
  return { ok: true, key };
}

export interface WebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature"?: string;
}

/**
 * Headers for one delivery attempt. `id` stays the same across retries so
 * receivers can deduplicate; the timestamp is fresh per attempt so receivers
 * can reject replays. Without a key the request goes out unsigned.
 */
export function webhookHeaders({
  key,
  id,
  body,
  timestampSeconds,
}: {
  key: Buffer | null;
  id: string;
  body: string;
  timestampSeconds: number;
}): WebhookHeaders {
  const timestamp = String(timestampSeconds);
  const headers: WebhookHeaders = { "webhook-id": id, "webhook-timestamp": timestamp };
  if (key !== null) {
    const mac = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
    headers["webhook-signature"] = `v1,${mac}`;
  }
  return headers;
}
