import { MAX_JOB_ERRORS, ResponseIX } from "@ix/contracts";
import { describe, expect, it } from "vitest";
import {
  appendJobError,
  assertLeaseSeconds,
  backoffSeconds,
  buildResponse,
  callbackLeaseSeconds,
  cancelledResponse,
  cancelledRunResponse,
  cancelReason,
  completionStatus,
  decideCallbackOutcome,
  decideManualRetry,
  decideOrphan,
  decideRunOutcome,
  effectiveMaxAttempts,
  errorEntryText,
  leaseExpiresAt,
  leaseRenewalIntervalSeconds,
  MAX_ERROR_ENTRY_CHARS,
  orphanedRunError,
  hostHealth,
  hostPauseSeconds,
  orphanHorizonSeconds,
  unrunnableResponse,
  unstorableResponse,
} from "../src/lifecycle.ts";

const job = {
  client_id: "acme",
  request_id: "r-1",
  ix_id: "0123456789abcdef",
  request: { use_case: "invoice" },
};

describe("lifecycle decisions (no database)", () => {
  it("a run ends done iff its response has no error", () => {
    expect(completionStatus({ error: null })).toBe("done");
    expect(completionStatus({ error: "boom" })).toBe("error");
    expect(completionStatus({ error: "" })).toBe("error");
  });

  it("horizons and leases follow their timeouts", () => {
    expect(orphanHorizonSeconds(60)).toBe(120);
    expect(callbackLeaseSeconds(10)).toBe(25);
  });

  it("backoff is full jitter under an exponential ceiling", () => {
    const schedule = { baseSeconds: 2, maxSeconds: 30 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffSeconds(n, schedule, () => 1))).toEqual([2, 4, 8, 16, 30, 30]);
    expect(backoffSeconds(3, schedule, () => 0.5)).toBe(4);
    expect(backoffSeconds(3, schedule, () => 0)).toBe(0);
  });

  it("builds one response shape; an error drops the result", () => {
    const run = {
      pipeline: "invoice",
      result: { a: 1 },
      startedAt: new Date("2026-01-01T00:00:00.000Z"),
      finishedAt: new Date("2026-01-01T00:00:01.500Z"),
      durationMs: 1500.4,
      attempt: 2,
    };
    expect(buildResponse(job, { ...run, error: null })).toEqual({
      use_case: "invoice",
      ix_client_id: "acme",
      request_id: "r-1",
      ix_id: "0123456789abcdef",
      error: null,
      result: { a: 1 },
      metadata: {
        pipeline: "invoice",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:00:01.500Z",
        duration_ms: 1500,
        attempt: 2,
      },
    });
    expect(buildResponse(job, { ...run, error: "bad" }).result).toBeNull();
  });

  it("an orphan is requeued until its last attempt, then fails with a response that says why", () => {
    const startedAt = new Date("2026-01-01T00:00:00.000Z");
    const now = new Date("2026-01-01T00:03:00.000Z");
    const params = { maxAttempts: 3, horizonSeconds: 120, now };
    expect(decideOrphan({ ...job, attempts: 0, startedAt }, params)).toEqual({ kind: "requeue" });
    expect(decideOrphan({ ...job, attempts: 1, startedAt }, params)).toEqual({ kind: "requeue" });
    const last = decideOrphan({ ...job, attempts: 2, startedAt }, params);
    expect(last.kind).toBe("fail");
    if (last.kind !== "fail") return;
    expect(last.response.error).toBe(
      "job orphaned 3 times: its worker stopped before finishing (crash, kill or timeout past 120 s); giving up after 3 attempts",
    );
    expect(last.response.metadata).toEqual({
      pipeline: "invoice",
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: "2026-01-01T00:03:00.000Z",
      duration_ms: 180_000,
      attempt: 3,
    });
  });

  it("a callback gives up on a permanent failure or its last attempt, else retries with backoff", () => {
    const rules = { maxAttempts: 3, backoff: { baseSeconds: 2, maxSeconds: 30 }, random: () => 1 };
    expect(decideCallbackOutcome({ ok: true, status: 204 }, { ...rules, attempt: 1 })).toEqual({ kind: "delivered" });
    expect(decideCallbackOutcome({ ok: false, error: "HTTP 500", permanent: false }, { ...rules, attempt: 2 })).toEqual({
      kind: "retry",
      error: "HTTP 500",
      delaySeconds: 4,
    });
    expect(decideCallbackOutcome({ ok: false, error: "HTTP 500", permanent: false }, { ...rules, attempt: 3 })).toEqual({
      kind: "failed",
      error: "HTTP 500",
    });
    expect(decideCallbackOutcome({ ok: false, error: "refused", permanent: true }, { ...rules, attempt: 1 })).toEqual({
      kind: "failed",
      error: "refused",
    });
  });

  it("a 410 Gone ends delivery at once; a Retry-After longer than the backoff is honoured up to the cap", () => {
    const rules = { maxAttempts: 5, backoff: { baseSeconds: 2, maxSeconds: 30 }, random: () => 0.5 };
    expect(decideCallbackOutcome({ ok: false, error: "HTTP 410", permanent: false, status: 410 }, { ...rules, attempt: 1 })).toEqual({
      kind: "failed",
      error: "HTTP 410",
    });
    const retry = (retryAfterSeconds: number) =>
      decideCallbackOutcome({ ok: false, error: "HTTP 503", permanent: false, status: 503, retryAfterSeconds }, { ...rules, attempt: 1 });
    expect(retry(0)).toMatchObject({ kind: "retry", delaySeconds: 1 }); // the jittered backoff wins
    expect(retry(20)).toMatchObject({ kind: "retry", delaySeconds: 20 });
    expect(retry(86_400)).toMatchObject({ kind: "retry", delaySeconds: 30 });
  });

  it("only silence, 5xx and 429 count against a host; a pause follows N of them in a row", () => {
    expect(hostHealth({ ok: true, status: 204 })).toBe("healthy");
    expect(hostHealth({ ok: false, error: "timeout", permanent: false })).toBe("failing");
    expect(hostHealth({ ok: false, error: "HTTP 502", permanent: false, status: 502 })).toBe("failing");
    expect(hostHealth({ ok: false, error: "HTTP 429", permanent: false, status: 429 })).toBe("failing");
    expect(hostHealth({ ok: false, error: "HTTP 404", permanent: false, status: 404 })).toBe("unknown");
    expect(hostHealth({ ok: false, error: "HTTP 302", permanent: false, status: 302 })).toBe("unknown");
    expect(hostHealth({ ok: false, error: "refused", permanent: true })).toBe("unknown");
    const policy = { failures: 5, cooldownSeconds: 60 };
    expect(hostPauseSeconds(4, policy)).toBeNull();
    expect(hostPauseSeconds(5, policy)).toBe(60);
    expect(hostPauseSeconds(6, policy)).toBe(60); // a failed probe after the pause pauses again
  });

  it("an unstorable or unrunnable job's response says why, bounded", () => {
    const startedAt = new Date("2026-01-01T00:00:00.000Z");
    const finishedAt = new Date("2026-01-01T00:00:01.000Z");
    const stored = unstorableResponse(job, { pipeline: "invoice", startedAt, finishedAt, durationMs: 1000, attempt: 2 }, "x".repeat(1000));
    expect(stored.error).toBe(`response could not be stored: ${"x".repeat(300)}…`);
    expect(stored.result).toBeNull();
    expect(stored.metadata).toMatchObject({ attempt: 2, duration_ms: 1000 });
    const unrunnable = unrunnableResponse(job, { reason: "request.context: required", startedAt, attempt: 1 });
    expect(unrunnable.error).toBe("job cannot run: its stored row is not a valid job (request.context: required)");
    expect(unrunnable.metadata).toMatchObject({ pipeline: "invoice", duration_ms: 0, attempt: 1 });
  });
});

describe("job control decisions (no database)", () => {
  const backoff = { baseSeconds: 2, maxSeconds: 30 };
  const live = { attempts: 0, maxAttempts: 3, cancelRequested: false };

  it("a run ends done iff it did not fail; a cancel requested wins over any outcome", () => {
    expect(decideRunOutcome({ failed: false, retryable: false }, live, { backoff })).toEqual({ kind: "done" });
    for (const run of [
      { failed: false, retryable: false },
      { failed: true, retryable: true },
      { failed: true, retryable: false },
    ]) {
      expect(decideRunOutcome(run, { ...live, cancelRequested: true }, { backoff })).toEqual({ kind: "cancelled" });
    }
  });

  it("a retryable failure is retried while runs remain, after a jittered backoff; the last one ends error", () => {
    const failed = { failed: true, retryable: true };
    expect(decideRunOutcome(failed, { ...live, attempts: 0 }, { backoff, random: () => 1 })).toEqual({ kind: "retry", delaySeconds: 2 });
    expect(decideRunOutcome(failed, { ...live, attempts: 1 }, { backoff, random: () => 1 })).toEqual({ kind: "retry", delaySeconds: 4 });
    expect(decideRunOutcome(failed, { ...live, attempts: 1 }, { backoff, random: () => 0.25 })).toEqual({ kind: "retry", delaySeconds: 1 });
    // Run 3 of 3: no run remains.
    expect(decideRunOutcome(failed, { ...live, attempts: 2 }, { backoff, random: () => 1 })).toEqual({ kind: "error" });
    // A single allowed run is never retried.
    expect(decideRunOutcome(failed, { ...live, maxAttempts: 1 }, { backoff })).toEqual({ kind: "error" });
    // The ceiling is bounded by maxSeconds however many runs came before.
    expect(decideRunOutcome(failed, { ...live, attempts: 20, maxAttempts: 25 }, { backoff, random: () => 1 })).toEqual({
      kind: "retry",
      delaySeconds: 30,
    });
  });

  it("a failure that is not retryable ends error at once", () => {
    expect(decideRunOutcome({ failed: true, retryable: false }, live, { backoff })).toEqual({ kind: "error" });
  });

  it("retryAfterSeconds is honoured when longer than the backoff, capped at maxSeconds; nonsense is ignored", () => {
    const asked = (retryAfterSeconds: number) =>
      decideRunOutcome({ failed: true, retryable: true, retryAfterSeconds }, live, { backoff, random: () => 0.5 });
    expect(asked(0.2)).toEqual({ kind: "retry", delaySeconds: 1 }); // the backoff is longer
    expect(asked(12)).toEqual({ kind: "retry", delaySeconds: 12 });
    expect(asked(3600)).toEqual({ kind: "retry", delaySeconds: 30 });
    expect(asked(Number.NaN)).toEqual({ kind: "retry", delaySeconds: 1 });
    expect(asked(-5)).toEqual({ kind: "retry", delaySeconds: 1 });
  });

  it("the job's own max_attempts comes first, then the pipeline's policy, then IX_MAX_ATTEMPTS", () => {
    expect(effectiveMaxAttempts(5, 2, 3)).toBe(5);
    expect(effectiveMaxAttempts(null, 2, 3)).toBe(2);
    expect(effectiveMaxAttempts(null, undefined, 3)).toBe(3);
  });

  it("the errors list appends and keeps the last MAX_JOB_ERRORS, oldest first, each error bounded", () => {
    const entry = (attempt: number) => ({ attempt, at: "2026-01-01T00:00:00.000Z", error: `e${attempt}` });
    let errors = appendJobError([], entry(1));
    expect(errors).toEqual([entry(1)]);
    for (let attempt = 2; attempt <= MAX_JOB_ERRORS + 5; attempt++) errors = appendJobError(errors, entry(attempt));
    expect(errors).toHaveLength(MAX_JOB_ERRORS);
    expect(errors[0]).toEqual(entry(6));
    expect(errors.at(-1)).toEqual(entry(MAX_JOB_ERRORS + 5));
    const long = "x".repeat(MAX_ERROR_ENTRY_CHARS + 10);
    expect(errorEntryText(long)).toBe(`${"x".repeat(MAX_ERROR_ENTRY_CHARS)}…`);
    expect(appendJobError([], { ...entry(1), error: long })[0]?.error).toBe(errorEntryText(long));
    expect(errorEntryText("short")).toBe("short");
  });

  it("a cancelled job's response says who cancelled it and when in its life", () => {
    expect(cancelReason("client", "pending")).toBe("cancelled by its client before it ran");
    expect(cancelReason("operator", "running")).toBe("cancelled by an operator while it was running");
    const now = new Date("2026-01-01T00:00:05.000Z");
    const pending = cancelledResponse({ ...job, attempts: 1 }, { by: "client", now });
    expect(ResponseIX.parse(pending)).toEqual(pending);
    expect(pending).toMatchObject({
      error: "cancelled by its client before it ran",
      result: null,
      metadata: { pipeline: "invoice", started_at: now.toISOString(), finished_at: now.toISOString(), duration_ms: 0, attempt: 2 },
    });
    const run = buildResponse(job, {
      pipeline: "invoice",
      error: null,
      result: { a: 1 },
      startedAt: new Date("2026-01-01T00:00:00.000Z"),
      finishedAt: now,
      durationMs: 5000,
      attempt: 1,
    });
    expect(cancelledRunResponse(run, "operator")).toEqual({ ...run, error: "cancelled by an operator while it was running", result: null });
  });

  it("a manual retry counts the run that ended the job once, and allows one more run", () => {
    const ended = (attempts: number, lastRun: number, maxAttempts: number | null, ran = true) => ({
      attempts,
      max_attempts: maxAttempts,
      started_at: ran ? "2026-01-01T00:00:00.000Z" : null,
      response: { metadata: { pipeline: "p", started_at: "2026-01-01T00:00:00.000Z", finished_at: "2026-01-01T00:00:00.000Z", duration_ms: 0, attempt: lastRun } },
    });
    // Its third run of three failed for good (attempts 2): that run now counts, and a fourth is allowed.
    expect(decideManualRetry(ended(2, 3, 3))).toEqual({ attempts: 3, maxAttempts: 4 });
    // Failed at once, not retryably, with runs to spare: the budget is raised by one as well.
    expect(decideManualRetry(ended(0, 1, 5))).toEqual({ attempts: 1, maxAttempts: 6 });
    // Given up as an orphan: the rescuer already counted its last run.
    expect(decideManualRetry(ended(3, 3, 3))).toEqual({ attempts: 3, maxAttempts: 4 });
    // Cancelled while pending: no run ended it.
    expect(decideManualRetry(ended(1, 2, 3, false))).toEqual({ attempts: 1, maxAttempts: 4 });
    // The policy's limit (null) stays the policy's.
    expect(decideManualRetry(ended(2, 3, null))).toEqual({ attempts: 3, maxAttempts: null });
    // A limit below what already ran (lowered by hand, a v1 row) still allows the next run.
    expect(decideManualRetry(ended(4, 5, 2))).toEqual({ attempts: 5, maxAttempts: 6 });
    // Retried twice: each retry counts one run and allows one more.
    const once = decideManualRetry(ended(2, 3, 3));
    expect(decideManualRetry(ended(once.attempts, once.attempts + 1, once.maxAttempts))).toEqual({ attempts: 4, maxAttempts: 5 });
  });

  it("a lease runs leaseSeconds from now and is renewed every third of it; nonsense leases are refused", () => {
    const now = new Date("2026-01-01T00:00:00.000Z");
    expect(leaseExpiresAt(now, 30).toISOString()).toBe("2026-01-01T00:00:30.000Z");
    expect(leaseRenewalIntervalSeconds(30)).toBe(10);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 86_401]) expect(() => assertLeaseSeconds(bad)).toThrow(RangeError);
    expect(() => assertLeaseSeconds(0.5)).not.toThrow();
  });

  it("an orphan whose cancel was requested ends cancelled; a lost lease is named as the cause", () => {
    const startedAt = new Date("2026-01-01T00:00:00.000Z");
    const now = new Date("2026-01-01T00:00:45.000Z");
    const cancelled = decideOrphan({ ...job, attempts: 0, startedAt, cancelRequestedBy: "client" }, { maxAttempts: 3, horizonSeconds: 120, now });
    expect(cancelled.kind).toBe("cancel");
    if (cancelled.kind === "cancel") {
      expect(cancelled.response).toMatchObject({ error: "cancelled by its client while it was running", result: null });
      expect(cancelled.response.metadata).toMatchObject({ duration_ms: 45_000, attempt: 1 });
    }
    const lost = decideOrphan({ ...job, attempts: 0, startedAt }, { maxAttempts: 1, horizonSeconds: 120, now, cause: "lease" });
    expect(lost.kind).toBe("fail");
    if (lost.kind === "fail") {
      expect(lost.response.error).toBe(
        "job orphaned 1 times: its worker stopped before finishing (crash, kill or freeze: its lease ran out); giving up after 1 attempts",
      );
    }
    expect(orphanedRunError("lease", 120)).toBe("orphaned: its worker stopped before finishing (crash, kill or freeze: its lease ran out)");
    expect(orphanedRunError("horizon", 120)).toBe("orphaned: its worker stopped before finishing (crash, kill or timeout past 120 s)");
  });
});
