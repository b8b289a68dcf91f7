import { type Job, type JobError, MAX_JOB_ERRORS, type ResponseIX } from "@ix/contracts";

/**
 * The job lifecycle's decisions, each written once and free of I/O: the repo's
 * SQL applies what these decide, the worker asks them what to do. See
 * docs/ARCHITECTURE.md ("Where each rule lives").
 */

/** How a finished run ends: `done` iff its response carries no error. */
export function completionStatus(response: Pick<ResponseIX, "error">): "done" | "error" {
  return response.error === null ? "done" : "error";
}

/**
 * A running row older than this is an orphan: its worker is presumed dead. Twice
 * the pipeline timeout, so a live run (which the timeout ends) is never swept.
 */
export function orphanHorizonSeconds(pipelineTimeoutSeconds: number): number {
  return 2 * pipelineTimeoutSeconds;
}

/**
 * A claimed callback delivery is leased for this long: a worker that dies
 * mid-POST leaves it to be sent again afterwards, and the lease outlasts any
 * live attempt (bounded by the callback timeout), so a live one is never sent twice.
 */
export function callbackLeaseSeconds(callbackTimeoutSeconds: number): number {
  return 2 * callbackTimeoutSeconds + 5;
}

/**
 * Exponential backoff with full jitter: uniform in [0, min(max, base × 2^(attempt−1))]
 * after failed attempt `attempt` (1-based), so receivers recovering from an
 * outage are not hit by every job at once. `random` is injected by tests.
 */
export function backoffSeconds(
  attempt: number,
  { baseSeconds, maxSeconds }: { baseSeconds: number; maxSeconds: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt - 1));
  return ceiling * random();
}

type ResponseIdentity = Pick<Job, "client_id" | "request_id" | "ix_id"> & { request: Pick<Job["request"], "use_case"> };

/** What a run produced, as the worker measured it. */
export interface RunRecord {
  pipeline: string;
  error: string | null;
  result: Record<string, unknown> | null;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  /** 1-based: the run is number `attempts + 1`. */
  attempt: number;
}

/** The one place a ResponseIX is assembled: the worker for a run, the rescuer for a given-up orphan. */
export function buildResponse(
  job: Pick<Job, "client_id" | "request_id" | "ix_id"> & { request: Pick<Job["request"], "use_case"> },
  run: RunRecord,
): ResponseIX {
  return {
    use_case: job.request.use_case,
    ix_client_id: job.client_id,
    request_id: job.request_id,
    ix_id: job.ix_id,
    error: run.error,
    result: run.error === null ? run.result : null,
    metadata: {
      pipeline: run.pipeline,
      started_at: run.startedAt.toISOString(),
      finished_at: run.finishedAt.toISOString(),
      duration_ms: Math.max(0, Math.round(run.durationMs)),
      attempt: run.attempt,
    },
  };
}

export type OrphanDecision = { kind: "requeue" } | { kind: "fail"; response: ResponseIX } | { kind: "cancel"; response: ResponseIX };

/** Why a running row counts as orphaned: its lease ran out, or it started longer ago than the horizon. */
export type OrphanCause = "lease" | "horizon";

function orphanCircumstance(cause: OrphanCause, horizonSeconds: number): string {
  return cause === "lease" ? "crash, kill or freeze: its lease ran out" : `crash, kill or timeout past ${horizonSeconds} s`;
}

/**
 * What happens to an orphaned run (its lease ran out, or it is `running` past
 * the horizon): the run counts as an attempt. A job whose cancel was requested
 * ends `cancelled`, since nobody will stop it now. Otherwise, once
 * `attempts + 1` reaches `maxAttempts` (the job's own, else the policy's) the
 * job ends `error` with a response saying why; before that it goes back to pending.
 */
export function decideOrphan(
  job: Pick<Job, "client_id" | "request_id" | "ix_id" | "attempts"> & {
    request: Pick<Job["request"], "use_case">;
    startedAt: Date;
    /** Set when a cancel of the running job was requested. */
    cancelRequestedBy?: CancelRequester | null;
  },
  {
    maxAttempts,
    horizonSeconds,
    now,
    cause = "horizon",
  }: { maxAttempts: number; horizonSeconds: number; now: Date; cause?: OrphanCause },
): OrphanDecision {
  const attempt = job.attempts + 1;
  const run = {
    pipeline: job.request.use_case,
    result: null,
    startedAt: job.startedAt,
    finishedAt: now,
    durationMs: Math.floor(now.getTime() - job.startedAt.getTime()),
    attempt,
  };
  if (job.cancelRequestedBy) {
    return { kind: "cancel", response: buildResponse(job, { ...run, error: cancelReason(job.cancelRequestedBy, "running") }) };
  }
  if (attempt < maxAttempts) return { kind: "requeue" };
  return {
    kind: "fail",
    response: buildResponse(job, {
      ...run,
      error:
        `job orphaned ${attempt} times: its worker stopped before finishing ` +
        `(${orphanCircumstance(cause, horizonSeconds)}); giving up after ${maxAttempts} attempts`,
    }),
  };
}

/** The `errors` entry of an orphaned run (requeued or given up). */
export function orphanedRunError(cause: OrphanCause, horizonSeconds: number): string {
  return `orphaned: its worker stopped before finishing (${orphanCircumstance(cause, horizonSeconds)})`;
}

// ---- job control: retries, cancel, manual retry, leases ----

/** Who asked for a cancel: the job's client (through the API with its key) or an operator. */
export const CANCEL_REQUESTERS = Object.freeze(["client", "operator"] as const);
export type CancelRequester = (typeof CANCEL_REQUESTERS)[number];

/**
 * What `response.error` of a cancelled job says: who cancelled it, and whether
 * it was waiting (`pending`: it never ran again) or `running` (its run was stopped).
 */
export function cancelReason(by: CancelRequester, was: "pending" | "running"): string {
  const who = by === "client" ? "its client" : "an operator";
  return was === "pending" ? `cancelled by ${who} before it ran` : `cancelled by ${who} while it was running`;
}

/** The response of a job cancelled while pending: nothing ran, so the run is empty and took no time. */
export function cancelledResponse(
  job: ResponseIdentity & Pick<Job, "attempts">,
  { by, now }: { by: CancelRequester; now: Date },
): ResponseIX {
  return buildResponse(job, {
    pipeline: job.request.use_case,
    error: cancelReason(by, "pending"),
    result: null,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    attempt: job.attempts + 1,
  });
}

/**
 * The response of a run stopped by a cancel: the run's own metadata, its
 * result dropped and its error replaced by who cancelled it. The completion
 * statement assembles the same in SQL (`jobs/complete.ts`) from `cancelReason`.
 */
export function cancelledRunResponse(response: ResponseIX, by: CancelRequester): ResponseIX {
  return { ...response, error: cancelReason(by, "running"), result: null };
}

/** How long a claim leases a run when the caller does not say (IX_LEASE_SECONDS's default). */
export const DEFAULT_LEASE_SECONDS = 30;

/**
 * The lease rule: a claim, and each renewal, leases a run until
 * `now + leaseSeconds`. Once that passes without a renewal the rescuer takes
 * the run back, so a dead or frozen worker's jobs wait about one lease.
 */
export function leaseExpiresAt(now: Date, leaseSeconds: number): Date {
  return new Date(now.getTime() + leaseSeconds * 1000);
}

/**
 * A worker renews its leases every third of the lease: two renewals in a
 * row may fail (a slow database, a lost connection) before a live run is
 * taken back.
 */
export function leaseRenewalIntervalSeconds(leaseSeconds: number): number {
  return leaseSeconds / 3;
}

/** Throws a RangeError unless `leaseSeconds` is a usable lease (positive, at most a day). */
export function assertLeaseSeconds(leaseSeconds: number): void {
  if (!Number.isFinite(leaseSeconds) || leaseSeconds <= 0 || leaseSeconds > 86_400) {
    throw new RangeError(`leaseSeconds must be a number of seconds in (0, 86400], got ${leaseSeconds}`);
  }
}

/**
 * The runs a job may have: its own `max_attempts` when it has one, else its
 * pipeline's retry policy, else the worker's IX_MAX_ATTEMPTS.
 */
export function effectiveMaxAttempts(jobMaxAttempts: number | null, policyMaxAttempts: number | undefined, fallback: number): number {
  return jobMaxAttempts ?? policyMaxAttempts ?? fallback;
}

/** Backoff between runs of a failing job: full jitter in [0, min(max, base × 2^(attempt−1))]. */
export interface RetryBackoff {
  baseSeconds: number;
  maxSeconds: number;
}

/**
 * How a run ends, as the worker decides it and `jobs.completeRuns` applies it:
 * `retry` returns the job to `pending`, due after `delaySeconds`.
 */
export type RunOutcome = { kind: "done" } | { kind: "error" } | { kind: "retry"; delaySeconds: number } | { kind: "cancelled" };

/**
 * The run-outcome rule. A run whose cancel was requested ends `cancelled`,
 * whatever it produced. Otherwise it ends `done` iff it did not fail. A failure
 * is retried when it was retryable (a provider's 429 or 503, a timeout) and
 * runs remain (`attempts + 1 < maxAttempts`): after a jittered backoff, or
 * after the `retryAfterSeconds` the failure asked for when that is longer,
 * capped like any delay at `backoff.maxSeconds`. Any other failure ends `error`.
 */
export function decideRunOutcome(
  run: { failed: boolean; retryable: boolean; retryAfterSeconds?: number | undefined },
  job: { attempts: number; maxAttempts: number; cancelRequested: boolean },
  { backoff, random = Math.random }: { backoff: RetryBackoff; random?: () => number },
): RunOutcome {
  if (job.cancelRequested) return { kind: "cancelled" };
  if (!run.failed) return { kind: "done" };
  const attempt = job.attempts + 1;
  if (!run.retryable || attempt >= job.maxAttempts) return { kind: "error" };
  const jittered = backoffSeconds(attempt, backoff, random);
  const asked = run.retryAfterSeconds !== undefined && Number.isFinite(run.retryAfterSeconds) && run.retryAfterSeconds > 0
    ? Math.min(run.retryAfterSeconds, backoff.maxSeconds)
    : 0;
  return { kind: "retry", delaySeconds: Math.max(jittered, asked) };
}

/** How much of one failed run's error an `errors` entry keeps: twenty of them must stay a small row. */
export const MAX_ERROR_ENTRY_CHARS = 1000;

/** A failed run's error as its `errors` entry keeps it: bounded. */
export function errorEntryText(error: string): string {
  return error.length > MAX_ERROR_ENTRY_CHARS ? `${error.slice(0, MAX_ERROR_ENTRY_CHARS)}…` : error;
}

/**
 * The errors-list rule: every failed run (retried, final or orphaned) appends
 * `{attempt, at, error}`; only the last MAX_JOB_ERRORS are kept, oldest first.
 * The store's SQL applies the same (`jobs/errors-list.ts`).
 */
export function appendJobError(errors: readonly JobError[], entry: JobError): JobError[] {
  return [...errors, { ...entry, error: errorEntryText(entry.error) }].slice(-MAX_JOB_ERRORS);
}

/**
 * The manual-retry rule: a job that ended `error` or `cancelled` goes back to
 * `pending` with its `errors` kept and one more run allowed. The run that
 * ended it is no longer its last, so it now counts in `attempts` (unless the
 * rescuer already counted it, as it does for orphans; a job cancelled while
 * pending had no run). A numeric `max_attempts` is raised by one, past what
 * has been run; null stays null, and the policy then decides, which cannot
 * refuse the run: a limit only decides whether a failure is retried.
 */
export function decideManualRetry(
  job: Pick<Job, "attempts" | "max_attempts" | "started_at"> & { response: Pick<ResponseIX, "metadata"> | null },
): { attempts: number; maxAttempts: number | null } {
  const lastRun = job.response?.metadata.attempt ?? 0;
  const uncounted = job.started_at !== null && lastRun > job.attempts;
  const attempts = uncounted ? job.attempts + 1 : job.attempts;
  const maxAttempts = job.max_attempts === null ? null : Math.max(job.max_attempts, attempts) + 1;
  return { attempts, maxAttempts };
}

/**
 * What one callback POST came to, as the sender saw it. A failure carries the
 * receiver's status when it answered, and its `Retry-After` in seconds when it
 * sent a usable one. `error` is what the row records (with the start of the
 * receiver's answer); `summary`, when set, is the same without the receiver's
 * words, for logs.
 */
export type CallbackSendResult =
  | { ok: true; status: number }
  | { ok: false; error: string; permanent: boolean; status?: number; retryAfterSeconds?: number; summary?: string };

export type CallbackOutcome =
  | { kind: "delivered" }
  | { kind: "retry"; error: string; delaySeconds: number }
  | { kind: "failed"; error: string };

/**
 * The callback give-up rule: a permanent failure (a refused target, say), a
 * 410 Gone (the receiver says the endpoint is gone for good) or the last
 * allowed attempt ends delivery `failed`; any other failure is retried after a
 * jittered backoff, or after the receiver's `Retry-After` when that is longer
 * (capped, like any delay, at `backoff.maxSeconds`).
 */
export function decideCallbackOutcome(
  sent: CallbackSendResult,
  {
    attempt,
    maxAttempts,
    backoff,
    random = Math.random,
  }: { attempt: number; maxAttempts: number; backoff: { baseSeconds: number; maxSeconds: number }; random?: () => number },
): CallbackOutcome {
  if (sent.ok) return { kind: "delivered" };
  if (sent.permanent || sent.status === 410 || attempt >= maxAttempts) return { kind: "failed", error: sent.error };
  const jittered = backoffSeconds(attempt, backoff, random);
  const asked = Math.min(sent.retryAfterSeconds ?? 0, backoff.maxSeconds);
  return { kind: "retry", error: sent.error, delaySeconds: Math.max(jittered, asked) };
}

/**
 * What a delivery says about the health of the receiving host, for its
 * circuit breaker: a 2xx says healthy; no answer (connect error, timeout), a
 * 5xx or a 429 says failing. A refused target, a redirect or another 4xx is
 * about that one URL, not the host, so it says nothing.
 */
export function hostHealth(sent: CallbackSendResult): "healthy" | "failing" | "unknown" {
  if (sent.ok) return "healthy";
  if (sent.permanent) return "unknown";
  if (sent.status === undefined) return "failing";
  return sent.status >= 500 || sent.status === 429 ? "failing" : "unknown";
}

/** The circuit breaker's settings (IX_CALLBACK_BREAKER_FAILURES, IX_CALLBACK_BREAKER_COOLDOWN_SECONDS). */
export interface BreakerPolicy {
  /** Failing deliveries in a row that pause a host. */
  failures: number;
  /** How long a paused host is left alone. */
  cooldownSeconds: number;
}

/**
 * The circuit breaker: a host whose last `failures` deliveries in a row failed
 * is paused for the cool-down; nothing is sent to it meanwhile, so its
 * deliveries spend no attempts. The count is not reset by the pause, so the
 * first delivery after it is a probe: one more failure pauses the host again
 * at once, one success (which resets the count) closes the breaker.
 * Returns how long to pause, or null.
 */
export function hostPauseSeconds(consecutiveFailures: number, policy: BreakerPolicy): number | null {
  return consecutiveFailures >= policy.failures ? policy.cooldownSeconds : null;
}

/** How much of a reason a stored error response quotes: the job's own data may be in it. */
const MAX_REASON_CHARS = 300;

function bounded(reason: string): string {
  return reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS)}…` : reason;
}


/**
 * The response stored instead of one the database refused or that broke the
 * ResponseIX contract (a NUL character, a result past PostgreSQL's jsonb
 * limits, …): the job ends `error` saying why, and only that job, since its
 * neighbours in the batch are stored on their own (`jobs.completeMany`).
 */
export function unstorableResponse(job: ResponseIdentity, run: Omit<RunRecord, "error" | "result">, reason: string): ResponseIX {
  return buildResponse(job, { ...run, error: `response could not be stored: ${bounded(reason)}`, result: null });
}

/**
 * The response of a claimed job whose stored row is not a valid Job (written
 * past the repo's validation, by hand or by an older version): it cannot be
 * run, so it ends `error` at once instead of failing the claim of its neighbours.
 */
export function unrunnableResponse(
  job: ResponseIdentity,
  { reason, startedAt, attempt }: { reason: string; startedAt: Date; attempt: number },
): ResponseIX {
  return buildResponse(job, {
    pipeline: job.request.use_case,
    error: `job cannot run: its stored row is not a valid job (${bounded(reason)})`,
    result: null,
    startedAt,
    finishedAt: startedAt,
    durationMs: 0,
    attempt,
  });
}
