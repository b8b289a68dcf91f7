/**
 * How `ix` ends, so scripts can tell outcomes apart; the README's table
 * documents the same numbers.
 */
export const EXIT = {
  /** Success; for a command that reports a job, the job is done (or not ended yet, without --wait). */
  ok: 0,
  /** Failure: the API refused the request, could not be reached, or anything else went wrong. */
  failure: 1,
  /** Bad arguments or a bad IX_ variable; nothing was sent. */
  usage: 2,
  /** The job ended `error` or `cancelled`: it produced no result. */
  jobFailed: 3,
  /** --wait gave up (--timeout) before the job ended; it may still end later. */
  waitTimeout: 4,
} as const;
