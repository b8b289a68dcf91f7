import type { RequestIX } from "@ix/contracts";

/**
 * JSON with object keys sorted, so two requests compare equal whatever order
 * their keys came in. Going through JSON also folds what a JSONB round trip
 * folds (-0 and 0, 1.0 and 1).
 */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) return item;
    return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function withoutIxId({ ix_id: _ignored, ...rest }: RequestIX): Omit<RequestIX, "ix_id"> {
  return rest;
}

/**
 * Whether a resubmission asks for the same thing as the stored job:
 * both parsed through RequestIX (options defaulted), compared by value with
 * ix_id left out, since ix assigns it. callback_url is not part of the
 * request: the first insert's wins.
 */
export function isSameRequest(stored: RequestIX, submitted: RequestIX): boolean {
  return canonicalJson(withoutIxId(stored)) === canonicalJson(withoutIxId(submitted));
}
