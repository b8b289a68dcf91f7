import type { RequestIX } from "@ix/contracts";
import type { jobs } from "@ix/store";

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

/** The scheduling fields of a submission, as the client sent them (absent = not given). */
export interface SubmittedScheduling {
  priority?: number | undefined;
  run_at?: string | undefined;
  max_attempts?: number | undefined;
}

/**
 * Whether a resubmission asks for the same scheduling as the job's first
 * submission: the same priority (absent = 0), the same run_at instant (an
 * offset or a Z naming the same instant is the same; absent only matches
 * absent), the same max_attempts (absent only matches absent). Compared with
 * what was submitted, not with the job's current run_at and max_attempts,
 * which retries and manual retries move.
 */
export function isSameSchedule(stored: jobs.SubmittedSchedule, submitted: SubmittedScheduling): boolean {
  const runAt = submitted.run_at === undefined ? null : Date.parse(submitted.run_at);
  return (
    stored.priority === (submitted.priority ?? 0) &&
    (stored.runAt === null ? null : stored.runAt.getTime()) === runAt &&
    stored.maxAttempts === (submitted.max_attempts ?? null)
  );
}
