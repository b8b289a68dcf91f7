import type { Job, ResponseIX } from "@ix/contracts";

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

export type OrphanDecision = { kind: "requeue" } | { kind: "fail"; response: ResponseIX };

/**
 * What happens to an orphaned run (its row is `running` past the horizon): the
 * run counts as an attempt, and once `attempts + 1` reaches `maxAttempts` the
 * job ends `error` with a response saying why; before that it goes back to pending.
 */
export function decideOrphan(
  job: Pick<Job, "client_id" | "request_id" | "ix_id" | "attempts"> & {
    request: Pick<Job["request"], "use_case">;
    startedAt: Date;
  },
  { maxAttempts, horizonSeconds, now }: { maxAttempts: number; horizonSeconds: number; now: Date },
): OrphanDecision {
  const attempt = job.attempts + 1;
  if (attempt < maxAttempts) return { kind: "requeue" };
  return {
    kind: "fail",
    response: buildResponse(job, {
      pipeline: job.request.use_case,
      error:
        `job orphaned ${attempt} times: its worker stopped before finishing ` +
        `(crash, kill or timeout past ${horizonSeconds} s); giving up after ${maxAttempts} attempts`,
      result: null,
      startedAt: job.startedAt,
      finishedAt: now,
      durationMs: Math.floor(now.getTime() - job.startedAt.getTime()),
      attempt,
    }),
  };
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

type ResponseIdentity = Pick<Job, "client_id" | "request_id" | "ix_id"> & { request: Pick<Job["request"], "use_case"> };

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
