import type { Job } from "@ix/contracts";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { IxCallbackVerificationError } from "./errors.ts";

/** Request headers as fetch (`Headers`) or Node's http module (`req.headers`) hand them over. */
export type CallbackHeaders = Headers | Record<string, string | string[] | undefined>;

const SECRET_PREFIX = "whsec_";

function webhookHeaders(headers: CallbackHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
  if (headers instanceof Headers) {
    for (const name of names) {
      const value = headers.get(name);
      if (value !== null) out[name] = value;
    }
    return out;
  }
  for (const [key, value] of Object.entries(headers)) {
    const name = key.toLowerCase();
    if (value !== undefined && names.includes(name)) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/**
 * Checks a callback ix sent, before anything else touches it, and returns
 * the Job it carries. `rawBody` must be the body exactly as received (parse
 * it first and the signature no longer matches); `secret` is the worker's
 * IX_CALLBACK_SECRET, the `whsec_…` key. The Standard Webhooks checks apply:
 * a signature over `webhook-id.webhook-timestamp.body` with that key, and a
 * timestamp within 5 minutes of now, so a captured callback cannot be
 * replayed later. Throws IxCallbackVerificationError when it does not verify.
 * ix delivers at least once: deduplicate on `webhook-id` (the job_id).
 */
export function verifyCallback(headers: CallbackHeaders, rawBody: string | Uint8Array, secret: string): Job {
  if (typeof secret !== "string" || !secret.startsWith(SECRET_PREFIX)) {
    throw new TypeError(`the secret must be the ${SECRET_PREFIX}… key the worker signs with (IX_CALLBACK_SECRET)`);
  }
  let webhook: Webhook;
  try {
    webhook = new Webhook(secret);
  } catch (error) {
    throw new TypeError(`the secret must be "${SECRET_PREFIX}" followed by base64, as IX_CALLBACK_SECRET is`, { cause: error });
  }
  const body = typeof rawBody === "string" ? rawBody : new TextDecoder().decode(rawBody);
  try {
    return webhook.verify(body, webhookHeaders(headers)) as Job;
  } catch (error) {
    if (error instanceof WebhookVerificationError) {
      throw new IxCallbackVerificationError(`the callback does not verify: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
