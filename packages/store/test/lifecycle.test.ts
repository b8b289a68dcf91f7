import { describe, expect, it } from "vitest";
import {
  backoffSeconds,
  buildResponse,
  callbackLeaseSeconds,
  completionStatus,
  decideCallbackOutcome,
  decideOrphan,
  hostHealth,
  hostPauseSeconds,
  orphanHorizonSeconds,
  unrunnableResponse,
  unstorableResponse,
} from "../src/lifecycle";

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
