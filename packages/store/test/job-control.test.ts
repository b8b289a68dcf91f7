import type { Job } from "@ix/contracts";
import { describe, expect } from "vitest";
import { type Database, type Executor, jobs, lifecycle, sql } from "../src/index.ts";
import { callbackState, insertJob, later, listenFor, request, responseFor, test } from "./fixtures.ts";
import { waitFor } from "../../testing/src/wait.ts";

// Job control in the store: submission fields, due times and leases in the
// claim, retries and cancels in the completion, cancel, manual retry, lease
// renewal, and the rescue by lease. Races run on separate pools, so they are
// real concurrent transactions.

async function databaseNow(db: Executor): Promise<Date> {
  const { rows } = await db.execute<{ ms: number }>(sql`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`);
  return new Date(rows[0]!.ms);
}

/** A running job, claimed the way a worker claims it (so no other job may be pending). */
async function claimed(db: Executor, fixture: jobs.InsertPendingParams = { request: request() }): Promise<Job> {
  const { job } = await jobs.insertPending(db, fixture);
  const [running] = await jobs.claimPending(db, { limit: 1 });
  expect(running?.job_id).toBe(job.job_id);
  return running!;
}

/** Resolves once `count` backends of this database wait for a row lock: the statements under test really queued. */
async function lockWaiters(db: Database, count: number): Promise<void> {
  await waitFor(`${count} statement(s) waiting for a row lock`, async () => {
    const { rows } = await db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
    );
    return rows[0]!.n >= count;
  });
}

async function row(db: Executor, jobId: string) {
  const { rows } = await db.execute<{
    lease_ms: number | null;
    lease_after_start: number | null;
    cancel_requested_by: string | null;
    submitted_run_at_ms: number | null;
    submitted_max_attempts: number | null;
  }>(sql`
    select (extract(epoch from lease_expires_at) * 1000)::float8 as lease_ms,
           extract(epoch from lease_expires_at - started_at)::float8 as lease_after_start,
           cancel_requested_by, (extract(epoch from submitted_run_at) * 1000)::float8 as submitted_run_at_ms, submitted_max_attempts
    from ix_jobs where job_id = ${jobId}`);
  return rows[0]!;
}

describe("submission fields", () => {
  test("priority, run_at and max_attempts are stored and served; unset they default", async ({ database: { db } }) => {
    const runAt = "2030-06-01T08:00:00+02:00";
    const given = await jobs.insertPending(db, { request: request(), priority: -7, runAt, maxAttempts: 4 });
    expect(given.job).toMatchObject({ priority: -7, run_at: "2030-06-01T06:00:00.000Z", max_attempts: 4, errors: [], cancel_requested_at: null });
    expect(given.submitted).toEqual({ priority: -7, runAt: new Date(runAt), maxAttempts: 4 });

    const plain = await jobs.insertPending(db, { request: request() });
    expect(plain.job).toMatchObject({ priority: 0, run_at: plain.job.created_at, max_attempts: null, errors: [], cancel_requested_at: null });
    expect(plain.submitted).toEqual({ priority: 0, runAt: null, maxAttempts: null });
    expect(await row(db, plain.job.job_id)).toMatchObject({ submitted_run_at_ms: null, submitted_max_attempts: null });

    // A resubmission answers the first submission's schedule, whatever it asks now.
    const again = await jobs.insertPending(db, { request: { ...given.job.request, ix_id: null }, priority: 50 });
    expect(again).toMatchObject({ created: false, submitted: given.submitted });
  });

  test("bad scheduling fields are refused naming the field, and nothing is written", async ({ database: { db } }) => {
    const bad: Array<[string, Partial<jobs.InsertPendingParams>]> = [
      ["priority", { priority: 101 }],
      ["priority", { priority: 1.5 }],
      ["maxAttempts", { maxAttempts: 0 }],
      ["maxAttempts", { maxAttempts: 26 }],
      ["runAt", { runAt: "tomorrow" }],
      ["runAt", { runAt: new Date(Number.NaN) }],
      ["runAt", { runAt: "1969-12-31T23:59:59Z" }],
    ];
    for (const [field, patch] of bad) {
      await expect(jobs.insertPending(db, { request: request(), ...patch }), field).rejects.toThrow(
        expect.objectContaining({ name: "InvalidJobInputError", message: expect.stringContaining(`invalid ${field}`) }),
      );
    }
    const { rows } = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
    expect(rows[0]!.n).toBe(0);
  });
});

describe("claim: due times and leases", () => {
  test("a job is not claimed before its run_at; due jobs of one client come in submission order", async ({ database: { db } }) => {
    const start = await databaseNow(db);
    const inAMinute = new Date(start.getTime() + 60_000);
    const future = (await jobs.insertPending(db, { request: request(), runAt: inAMinute })).job;
    const due = (await jobs.insertPending(db, { request: request() })).job;
    const overdue = (await jobs.insertPending(db, { request: request(), runAt: new Date(start.getTime() - 60_000) })).job;
    const now = await databaseNow(db);

    // A run_at in the past does not put a job ahead of its client's earlier submissions.
    expect((await jobs.claimPending(db, { limit: 10, now })).map((j) => j.job_id)).toEqual([due.job_id, overdue.job_id]);
    expect(await jobs.claimPending(db, { limit: 10, now: new Date(inAMinute.getTime() - 1) })).toEqual([]);
    expect((await jobs.claimPending(db, { limit: 10, now: inAMinute })).map((j) => j.job_id)).toEqual([future.job_id]);
  });

  test("a claim leases each run for leaseSeconds from the claim", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    await jobs.insertPending(db, { request: request() });
    const [a] = await jobs.claimPending(db, { limit: 1, leaseSeconds: 7.5 });
    const [b] = await jobs.claimPending(db, { limit: 1 });
    expect((await row(db, a!.job_id)).lease_after_start).toBe(7.5);
    expect((await row(db, b!.job_id)).lease_after_start).toBe(lifecycle.DEFAULT_LEASE_SECONDS);
    await expect(jobs.claimPending(db, { limit: 1, leaseSeconds: 0 })).rejects.toThrow(RangeError);
  });
});

describe("completion outcomes", () => {
  test("retry: back to pending, due after the delay, attempts + 1, the failure in errors, no callback", async ({ database: { db } }) => {
    const job = await claimed(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    const before = await databaseNow(db);
    const runs = await jobs.completeRuns(db, [
      { jobId: job.job_id, attempts: 0, response: responseFor(job, "HTTP 503 from the provider"), outcome: { kind: "retry", delaySeconds: 30 } },
    ]);
    const after = await databaseNow(db);
    expect(runs).toEqual([{ jobId: job.job_id, status: "pending" }]);
    const retried = (await jobs.get(db, job.job_id))!;
    expect(retried).toMatchObject({ status: "pending", attempts: 1, started_at: null, finished_at: null, response: null });
    expect(retried.errors).toEqual([{ attempt: 1, at: expect.any(String), error: "HTTP 503 from the provider" }]);
    const failedAt = Date.parse(retried.errors[0]!.at);
    expect(failedAt).toBeGreaterThanOrEqual(before.getTime() - 1);
    expect(failedAt).toBeLessThanOrEqual(after.getTime() + 1);
    expect(Date.parse(retried.run_at)).toBe(failedAt + 30_000);
    expect(await row(db, job.job_id)).toMatchObject({ lease_ms: null });
    expect(await callbackState(db, job.job_id)).toEqual({ attempts: 0, nextAttemptAt: null, lastError: null });

    // Not claimable until due; the run after it is number 2 and fenced on attempts 1.
    expect(await jobs.claimPending(db, { limit: 1, now: new Date(Date.parse(retried.run_at) - 1) })).toEqual([]);
    // (run_at holds microseconds the wire's milliseconds round down.)
    const [second] = await jobs.claimPending(db, { limit: 1, now: new Date(Date.parse(retried.run_at) + 1) });
    expect(second).toMatchObject({ job_id: job.job_id, attempts: 1 });
    expect(await jobs.completeMany(db, [{ jobId: job.job_id, attempts: 0, response: responseFor(job, "stale") }])).toEqual([]);

    // The last failure ends error: it joins errors, and the callback is due.
    expect(
      await jobs.completeRuns(db, [{ jobId: job.job_id, attempts: 1, response: responseFor(second!, "still 503"), outcome: { kind: "error" } }]),
    ).toEqual([{ jobId: job.job_id, status: "error" }]);
    const ended = (await jobs.get(db, job.job_id))!;
    expect(ended).toMatchObject({ status: "error", attempts: 1 });
    expect(ended.errors.map((e) => [e.attempt, e.error])).toEqual([
      [1, "HTTP 503 from the provider"],
      [2, "still 503"],
    ]);
    expect((await callbackState(db, job.job_id))?.nextAttemptAt).not.toBeNull();
  });

  test("done adds no error; an error without an outcome still ends error and is listed", async ({ database: { db } }) => {
    const a = await claimed(db);
    const b = await claimed(db);
    expect(
      await jobs.completeRuns(db, [
        { jobId: a.job_id, attempts: 0, response: responseFor(a), outcome: { kind: "done" } },
        { jobId: b.job_id, attempts: 0, response: responseFor(b, "bad input") },
      ]),
    ).toEqual(expect.arrayContaining([{ jobId: a.job_id, status: "done" }, { jobId: b.job_id, status: "error" }]));
    expect((await jobs.get(db, a.job_id))?.errors).toEqual([]);
    expect((await jobs.get(db, b.job_id))?.errors.map((e) => e.error)).toEqual(["bad input"]);
  });

  test("errors keep the last 20 failed runs, oldest first, each bounded", async ({ database: { db } }) => {
    const errors = Array.from({ length: 20 }, (_, i) => ({ attempt: i + 1, at: "2026-01-01T00:00:00.000Z", error: `run ${i + 1}` }));
    const job = await insertJob(db, { status: "running", attempts: 20, maxAttempts: 25, errors });
    const long = "y".repeat(lifecycle.MAX_ERROR_ENTRY_CHARS + 50);
    await jobs.completeRuns(db, [
      { jobId: job.job_id, attempts: 20, response: responseFor(job, long), outcome: { kind: "retry", delaySeconds: 0 } },
    ]);
    const after = (await jobs.get(db, job.job_id))!;
    expect(after.errors).toHaveLength(20);
    expect(after.errors[0]).toEqual(errors[1]);
    expect(after.errors.at(-1)).toMatchObject({ attempt: 21, error: lifecycle.errorEntryText(long) });
    expect(after.errors).toEqual(lifecycle.appendJobError(errors, after.errors.at(-1)!));
  });

  test("an outcome that contradicts its response is refused, and nothing is written", async ({ database: { db } }) => {
    const job = await claimed(db);
    const cases: jobs.Completion[] = [
      { jobId: job.job_id, attempts: 0, response: responseFor(job, "boom"), outcome: { kind: "done" } },
      { jobId: job.job_id, attempts: 0, response: responseFor(job), outcome: { kind: "error" } },
      { jobId: job.job_id, attempts: 0, response: responseFor(job), outcome: { kind: "retry", delaySeconds: 1 } },
      { jobId: job.job_id, attempts: 0, response: responseFor(job, "x"), outcome: { kind: "retry", delaySeconds: -1 } },
      { jobId: job.job_id, attempts: 0, response: responseFor(job, "x"), outcome: { kind: "retry", delaySeconds: Number.NaN } },
    ];
    for (const completion of cases) {
      await expect(jobs.completeRuns(db, [completion]), completion.outcome?.kind).rejects.toThrow(
        expect.objectContaining({ name: "InvalidJobInputError", message: expect.stringContaining(job.job_id) }),
      );
    }
    expect(await jobs.get(db, job.job_id)).toEqual(job);
  });

  test("a run whose cancel was requested ends cancelled whatever its outcome, its callback due", async ({ database: { db } }) => {
    const outcomes: Array<[jobs.Completion["outcome"], string | null]> = [
      [{ kind: "done" }, null],
      [{ kind: "error" }, "boom"],
      [{ kind: "retry", delaySeconds: 5 }, "HTTP 429"],
      [{ kind: "cancelled" }, "aborted"],
      [undefined, null],
    ];
    for (const [outcome, error] of outcomes) {
      const job = await claimed(db, { request: request(), callbackUrl: "https://hooks.example/c" });
      expect((await jobs.cancel(db, { jobId: job.job_id, by: "operator" })).outcome).toBe("requested");
      const response = responseFor(job, error);
      const runs = await jobs.completeRuns(db, [{ jobId: job.job_id, attempts: 0, response, ...(outcome ? { outcome } : {}) }]);
      expect(runs, JSON.stringify(outcome)).toEqual([{ jobId: job.job_id, status: "cancelled" }]);
      const ended = (await jobs.get(db, job.job_id))!;
      expect(ended).toMatchObject({ status: "cancelled", attempts: 0, errors: [] });
      expect(ended.response).toEqual(lifecycle.cancelledRunResponse(response, "operator"));
      expect(ended.cancel_requested_at).not.toBeNull();
      expect(ended.finished_at).not.toBeNull();
      expect((await callbackState(db, job.job_id))?.nextAttemptAt).not.toBeNull();
    }
  });

  test("a response the database refuses still ends the run cancelled when a cancel was requested", async ({ database: { db } }) => {
    const bad = await claimed(db);
    const good = await insertJob(db, { status: "running" });
    await jobs.cancel(db, { jobId: bad.job_id, by: "client" });
    const unstorable = { ...responseFor(bad), result: { text: "nul \u0000 inside" } };
    const runs = await jobs.completeRuns(db, [
      { jobId: bad.job_id, attempts: 0, response: unstorable },
      { jobId: good.job_id, attempts: 0, response: responseFor(good) },
    ]);
    expect(runs).toEqual(expect.arrayContaining([{ jobId: bad.job_id, status: "cancelled" }, { jobId: good.job_id, status: "done" }]));
    expect((await jobs.get(db, bad.job_id))?.response).toMatchObject({ error: "cancelled by its client while it was running", result: null });
  });

  test("a cancelled outcome without a cancel request ends as the response says", async ({ database: { db } }) => {
    const job = await claimed(db);
    expect(await jobs.completeRuns(db, [{ jobId: job.job_id, attempts: 0, response: responseFor(job, "stopped"), outcome: { kind: "cancelled" } }])).toEqual([
      { jobId: job.job_id, status: "error" },
    ]);
  });
});

describe("cancel", () => {
  test("a pending job is cancelled at once: response names the client, callback due, never claimed", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    const result = await jobs.cancel(db, { jobId: job.job_id, clientId: job.client_id, by: "client" });
    expect(result.outcome).toBe("cancelled");
    if (result.outcome !== "cancelled") return;
    expect(result.job).toMatchObject({ status: "cancelled", attempts: 0, started_at: null });
    expect(result.job.finished_at).not.toBeNull();
    expect(result.job.cancel_requested_at).toBe(result.job.finished_at);
    expect(result.job.response).toMatchObject({ error: "cancelled by its client before it ran", result: null, ix_id: job.ix_id });
    expect(await jobs.get(db, job.job_id)).toEqual(result.job);
    expect((await callbackState(db, job.job_id))?.nextAttemptAt?.toISOString()).toBe(result.job.finished_at);
    expect(await jobs.claimPending(db, { limit: 1, now: later() })).toEqual([]);
    expect((await row(db, job.job_id)).cancel_requested_by).toBe("client");
  });

  test("a running job gets cancel_requested_at and its worker is told on the cancel channel", async ({ database: { db, url } }) => {
    const job = await claimed(db);
    const listening = await listenFor(url, jobs.CANCEL_CHANNEL);
    try {
      const first = await jobs.cancel(db, { jobId: job.job_id, by: "client" });
      expect(first.outcome).toBe("requested");
      if (first.outcome !== "requested") return;
      expect(first.job).toMatchObject({ status: "running", attempts: 0, started_at: job.started_at });
      expect(first.job.cancel_requested_at).not.toBeNull();
      // Asked again (by someone else): the first request's time and requester stay; the worker is told again.
      const second = await jobs.cancel(db, { jobId: job.job_id, by: "operator" });
      expect(second).toEqual(first);
      expect((await row(db, job.job_id)).cancel_requested_by).toBe("client");
      await listening.caughtUp();
      expect(listening.heard).toEqual([
        { channel: jobs.CANCEL_CHANNEL, payload: job.job_id },
        { channel: jobs.CANCEL_CHANNEL, payload: job.job_id },
      ]);
    } finally {
      await listening.close();
    }
  });

  test("an ended job is not changed; another client's job and unknown ids are not found", async ({ database: { db } }) => {
    for (const status of ["done", "error", "cancelled"] as const) {
      const job = await insertJob(db, { status });
      expect(await jobs.cancel(db, { jobId: job.job_id, by: "client" })).toEqual({ outcome: "terminal", job });
      expect(await jobs.get(db, job.job_id)).toEqual(job);
    }
    const theirs = await insertJob(db, { status: "pending", request: request({ ix_client_id: "them" }) });
    expect(await jobs.cancel(db, { jobId: theirs.job_id, clientId: "me", by: "client" })).toEqual({ outcome: "not_found" });
    expect(await jobs.get(db, theirs.job_id)).toEqual(theirs);
    expect(await jobs.cancel(db, { jobId: "00000000-0000-4000-8000-000000000000", by: "client" })).toEqual({ outcome: "not_found" });
    expect(await jobs.cancel(db, { jobId: "nope'; drop table ix_jobs; --", by: "client" })).toEqual({ outcome: "not_found" });
  });

  test("inside a caller's transaction it applies or rolls back with it", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: request() });
    await expect(
      db.transaction(async (tx) => {
        expect((await jobs.cancel(tx, { jobId: job.job_id, by: "client" })).outcome).toBe("cancelled");
        throw new Error("caller aborts");
      }),
    ).rejects.toThrow("caller aborts");
    expect(await jobs.get(db, job.job_id)).toEqual(job);
  });
});

describe("manual retry", () => {
  test("an error job goes back to pending: errors kept, its run counted, one more run allowed, workers woken", async ({
    database: { db, url },
  }) => {
    const job = await claimed(db, { request: request(), maxAttempts: 1, callbackUrl: "https://hooks.example/a" });
    await jobs.completeMany(db, [{ jobId: job.job_id, attempts: 0, response: responseFor(job, "provider down") }]);
    // Its callback was delivered; the retried job's next ending must be delivered again.
    const [delivery] = await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30 });
    await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: delivery!.attempt, outcome: { kind: "delivered" } });
    const errored = (await jobs.get(db, job.job_id))!;
    expect(errored).toMatchObject({ status: "error", callback_status: "delivered", attempts: 0, max_attempts: 1 });

    const listening = await listenFor(url, jobs.PENDING_CHANNEL);
    try {
      const result = await jobs.retry(db, { jobId: job.job_id, clientId: job.client_id });
      await listening.caughtUp();
      expect(listening.heard.map((n) => n.channel)).toEqual([jobs.PENDING_CHANNEL]);
      expect(result.outcome).toBe("retried");
      if (result.outcome !== "retried") return;
      expect(result.job).toMatchObject({
        job_id: job.job_id,
        status: "pending",
        attempts: 1,
        max_attempts: 2,
        errors: errored.errors,
        response: null,
        started_at: null,
        finished_at: null,
        callback_status: null,
        cancel_requested_at: null,
      });
      expect(Date.parse(result.job.run_at)).toBeGreaterThanOrEqual(Date.parse(errored.finished_at!));
      expect(await callbackState(db, job.job_id)).toEqual({ attempts: 0, nextAttemptAt: null, lastError: null });
      // The resubmission comparison still sees the submission's own max_attempts.
      expect((await row(db, job.job_id)).submitted_max_attempts).toBe(1);
    } finally {
      await listening.close();
    }

    // Run 2 is the one more run: a retryable failure of it is final (2 of 2), and its ending is delivered.
    const [again] = await jobs.claimPending(db, { limit: 1 });
    expect(again).toMatchObject({ attempts: 1 });
    const decided = lifecycle.decideRunOutcome(
      { failed: true, retryable: true },
      { attempts: again!.attempts, maxAttempts: again!.max_attempts!, cancelRequested: false },
      { backoff: { baseSeconds: 1, maxSeconds: 1 } },
    );
    expect(decided).toEqual({ kind: "error" });
    await jobs.completeRuns(db, [{ jobId: job.job_id, attempts: 1, response: responseFor(again!, "still down"), outcome: decided }]);
    const final = (await jobs.get(db, job.job_id))!;
    expect(final.errors.map((e) => [e.attempt, e.error])).toEqual([
      [1, "provider down"],
      [2, "still down"],
    ]);
    expect(await callbackState(db, job.job_id)).toMatchObject({ attempts: 0, nextAttemptAt: expect.any(Date) });
  });

  test("a cancelled job is retried whether it was cancelled pending or running; the cancel is cleared", async ({ database: { db } }) => {
    const running = await claimed(db);
    await jobs.cancel(db, { jobId: running.job_id, by: "client" });
    await jobs.completeMany(db, [{ jobId: running.job_id, attempts: 0, response: responseFor(running) }]);
    const fromRunning = await jobs.retry(db, { jobId: running.job_id });
    expect(fromRunning).toMatchObject({ outcome: "retried", job: { status: "pending", attempts: 1, cancel_requested_at: null } });
    expect((await row(db, running.job_id)).cancel_requested_by).toBeNull();

    const { job: waiting } = await jobs.insertPending(db, { request: request() });
    await jobs.cancel(db, { jobId: waiting.job_id, by: "client" });
    const fromPending = await jobs.retry(db, { jobId: waiting.job_id });
    expect(fromPending).toMatchObject({ outcome: "retried", job: { status: "pending", attempts: 0, cancel_requested_at: null } });
  });

  test("pending, running and done jobs are not retried; another client's job is not found", async ({ database: { db } }) => {
    for (const status of ["pending", "running", "done"] as const) {
      const job = await insertJob(db, { status });
      expect(await jobs.retry(db, { jobId: job.job_id })).toEqual({ outcome: "not_retryable", job });
      expect(await jobs.get(db, job.job_id)).toEqual(job);
    }
    const theirs = await insertJob(db, { status: "error", request: request({ ix_client_id: "them" }) });
    expect(await jobs.retry(db, { jobId: theirs.job_id, clientId: "me" })).toEqual({ outcome: "not_found" });
    expect(await jobs.retry(db, { jobId: "not-a-uuid" })).toEqual({ outcome: "not_found" });
  });

  test("a delivery of the old ending still in flight cannot mark the retried job's callback", async ({ database: { db } }) => {
    const job = await insertJob(db, { status: "error", callbackUrl: "https://hooks.example/a" });
    const [delivery] = await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30 });
    expect(delivery?.job.job_id).toBe(job.job_id);
    await jobs.retry(db, { jobId: job.job_id });
    expect(await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: delivery!.attempt, outcome: { kind: "delivered" } })).toBe(false);
    expect((await jobs.get(db, job.job_id))?.callback_status).toBeNull();
  });
});

describe("renewLeases", () => {
  test("renews this worker's runs in one statement, reports cancels, and names the runs it lost", async ({ database: { db } }) => {
    const kept = await claimed(db);
    const cancelled = await claimed(db);
    const rescued = await claimed(db);
    const finished = await claimed(db);
    await jobs.cancel(db, { jobId: cancelled.job_id, by: "client" });
    await db.execute(sql`update ix_jobs set lease_expires_at = now() - interval '1 second' where job_id = ${rescued.job_id}`);
    expect((await jobs.rescueOrphans(db, { horizonSeconds: 3600, maxAttempts: 3 })).requeued).toEqual([rescued.job_id]);
    await jobs.completeMany(db, [{ jobId: finished.job_id, attempts: 0, response: responseFor(finished) }]);
    // An expired lease the rescuer has not acted on is still this worker's run.
    await db.execute(sql`update ix_jobs set lease_expires_at = now() - interval '1 second' where job_id = ${kept.job_id}`);

    const now = await databaseNow(db);
    const result = await jobs.renewLeases(db, {
      runs: [kept, cancelled, rescued, finished].map((j) => ({ jobId: j.job_id, attempts: j.attempts })).concat([
        { jobId: "00000000-0000-4000-8000-000000000000", attempts: 0 },
        { jobId: "garbage", attempts: 0 },
      ]),
      leaseSeconds: 45,
      now,
    });
    expect(result.renewed.sort()).toEqual([kept.job_id, cancelled.job_id].sort());
    expect(result.cancelRequested).toEqual([cancelled.job_id]);
    expect(result.lost).toEqual([rescued.job_id, finished.job_id, "00000000-0000-4000-8000-000000000000", "garbage"]);
    for (const id of [kept.job_id, cancelled.job_id]) {
      expect((await row(db, id)).lease_ms).toBe(now.getTime() + 45_000);
    }
    // The fence: the rescued job's next claimer is not the holder of attempts 0.
    const [next] = await jobs.claimPending(db, { limit: 1 });
    expect(next?.job_id).toBe(rescued.job_id);
    expect((await jobs.renewLeases(db, { runs: [{ jobId: rescued.job_id, attempts: 0 }], leaseSeconds: 30 })).lost).toEqual([rescued.job_id]);
    expect(await jobs.renewLeases(db, { runs: [], leaseSeconds: 30 })).toEqual({ renewed: [], cancelRequested: [], lost: [] });
    await expect(jobs.renewLeases(db, { runs: [{ jobId: kept.job_id, attempts: -1 }], leaseSeconds: 30 })).rejects.toThrow(RangeError);
  });
});

describe("rescue by lease", () => {
  test("a run whose lease ran out is rescued long before the horizon; a current lease is left alone", async ({ database: { db } }) => {
    const lost = await claimed(db);
    const live = await claimed(db);
    await db.execute(sql`update ix_jobs set lease_expires_at = now() - interval '1 millisecond' where job_id = ${lost.job_id}`);
    const result = await jobs.rescueOrphans(db, { horizonSeconds: 3600, maxAttempts: 3 });
    expect(result).toEqual({ skipped: false, requeued: [lost.job_id], failed: [], cancelled: [] });
    const requeued = (await jobs.get(db, lost.job_id))!;
    expect(requeued).toMatchObject({ status: "pending", attempts: 1, started_at: null });
    expect(requeued.errors).toEqual([{ attempt: 1, at: expect.any(String), error: lifecycle.orphanedRunError("lease", 3600) }]);
    expect(await row(db, lost.job_id)).toMatchObject({ lease_ms: null });
    expect(await jobs.get(db, live.job_id)).toEqual(live);
  });

  test("the horizon still rescues a run whose lease keeps being renewed", async ({ database: { db } }) => {
    const stuck = await insertJob(db, { status: "running", startedAt: new Date(Date.now() - 3_600_000) });
    const result = await jobs.rescueOrphans(db, { horizonSeconds: 600, maxAttempts: 3 });
    expect(result.requeued).toEqual([stuck.job_id]);
    expect((await jobs.get(db, stuck.job_id))?.errors[0]?.error).toBe(lifecycle.orphanedRunError("horizon", 600));
  });

  test("the job's own max_attempts decides, then its pipeline's policy, then the default", async ({ database: { db } }) => {
    const old = new Date(Date.now() - 3_600_000);
    const own = await insertJob(db, { status: "running", startedAt: old, maxAttempts: 1, request: request({ use_case: "ocr" }) });
    const policy = await insertJob(db, { status: "running", startedAt: old, request: request({ use_case: "ocr" }) });
    const fallback = await insertJob(db, { status: "running", startedAt: old, request: request({ use_case: "llm" }) });
    const result = await jobs.rescueOrphans(db, {
      horizonSeconds: 60,
      maxAttempts: 3,
      policyMaxAttempts: (useCase) => (useCase === "ocr" ? 1 : undefined),
    });
    expect(result.failed.sort()).toEqual([own.job_id, policy.job_id].sort());
    expect(result.requeued).toEqual([fallback.job_id]);
    const failed = (await jobs.get(db, own.job_id))!;
    expect(failed).toMatchObject({ status: "error", attempts: 1 });
    expect(failed.errors.map((e) => e.attempt)).toEqual([1]);
  });

  test("an orphan whose cancel was requested ends cancelled, its callback due, its run counted", async ({ database: { db } }) => {
    const job = await claimed(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    await jobs.cancel(db, { jobId: job.job_id, by: "operator" });
    const result = await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3, now: later() });
    expect(result).toEqual({ skipped: false, requeued: [], failed: [], cancelled: [job.job_id] });
    const ended = (await jobs.get(db, job.job_id))!;
    expect(ended).toMatchObject({ status: "cancelled", attempts: 1, errors: [] });
    expect(ended.response?.error).toBe("cancelled by an operator while it was running");
    expect((await callbackState(db, job.job_id))?.nextAttemptAt).not.toBeNull();
    // A manual retry does not count the orphaned run twice.
    expect(await jobs.retry(db, { jobId: job.job_id })).toMatchObject({ outcome: "retried", job: { attempts: 1 } });
  });

  test("one rescuer at a time: another finds the lock held and skips at once", async ({ database }) => {
    const { db } = database;
    const other = database.connect({ max: 2 });
    const orphan = await insertJob(db, { status: "running", startedAt: new Date(Date.now() - 3_600_000) });
    await db.transaction(async (tx) => {
      expect((await jobs.rescueOrphans(tx, { horizonSeconds: 60, maxAttempts: 3 })).requeued).toEqual([orphan.job_id]);
      // This transaction still holds the rescue lock; a rescuer on another connection does nothing.
      const skipped = await other.transaction(async (o) => {
        await o.execute(sql`set local lock_timeout = '5s'`);
        return jobs.rescueOrphans(o, { horizonSeconds: 0, maxAttempts: 3, now: later() });
      });
      expect(skipped).toEqual({ skipped: true, requeued: [], failed: [], cancelled: [] });
    });
    // Released with the transaction.
    expect((await jobs.rescueOrphans(other, { horizonSeconds: 60, maxAttempts: 3 })).skipped).toBe(false);
  });
});

describe("races on real concurrent connections", () => {
  test("cancel vs completion, both orders: a cancel that commits first always wins", async ({ database }) => {
    const { db } = database;
    const a = database.connect({ max: 2 });
    const b = database.connect({ max: 2 });

    // The completion commits first: the cancel, queued behind it, finds the job ended.
    const first = await claimed(db);
    let cancelled: Promise<jobs.CancelResult> | undefined;
    await a.transaction(async (tx) => {
      expect(await jobs.completeRuns(tx, [{ jobId: first.job_id, attempts: 0, response: responseFor(first) }])).toEqual([
        { jobId: first.job_id, status: "done" },
      ]);
      cancelled = jobs.cancel(b, { jobId: first.job_id, by: "client" });
      await lockWaiters(db, 1);
    });
    expect(await cancelled).toMatchObject({ outcome: "terminal", job: { status: "done" } });

    // The cancel commits first: the completion, queued behind it, sees the request and ends the job cancelled.
    const second = await claimed(db);
    let completed: Promise<jobs.CompletedRun[]> | undefined;
    await a.transaction(async (tx) => {
      expect((await jobs.cancel(tx, { jobId: second.job_id, by: "client" })).outcome).toBe("requested");
      completed = jobs.completeRuns(b, [{ jobId: second.job_id, attempts: 0, response: responseFor(second) }]);
      await lockWaiters(db, 1);
    });
    expect(await completed).toEqual([{ jobId: second.job_id, status: "cancelled" }]);
    expect((await jobs.get(db, second.job_id))?.status).toBe("cancelled");
  });

  test("cancel vs completion at once on 40 jobs: every pair agrees on what happened", async ({ database }) => {
    const { db } = database;
    const cancels = database.connect({ max: 10 });
    const completions = database.connect({ max: 10 });
    for (let i = 0; i < 40; i++) await jobs.insertPending(db, { request: request() });
    const running = await jobs.claimPending(db, { limit: 40 });
    const results = await Promise.all(
      running.map(async (job) => {
        const [cancel, completion] = await Promise.all([
          jobs.cancel(cancels, { jobId: job.job_id, by: "client" }),
          jobs.completeRuns(completions, [{ jobId: job.job_id, attempts: 0, response: responseFor(job, "boom"), outcome: { kind: "error" } }]),
        ]);
        return { job, cancel: cancel.outcome, completion, final: (await jobs.get(db, job.job_id))! };
      }),
    );
    for (const { job, cancel, completion, final } of results) {
      // The completion always applies: nobody else held the run.
      expect(completion, job.job_id).toEqual([{ jobId: job.job_id, status: final.status }]);
      if (cancel === "requested") expect(final.status, job.job_id).toBe("cancelled");
      else expect([cancel, final.status], job.job_id).toEqual(["terminal", "error"]);
    }
    const outcomes = results.map((r) => r.cancel);
    console.log(`[races] cancel vs completion: ${outcomes.filter((o) => o === "requested").length} cancels first, ${outcomes.filter((o) => o === "terminal").length} completions first`);
  });

  test("cancel vs rescue, both orders: the job ends cancelled either way", async ({ database }) => {
    const { db } = database;
    const a = database.connect({ max: 2 });
    const b = database.connect({ max: 2 });

    // The rescue commits first (requeued): the queued cancel finds it pending and cancels it at once.
    const first = await insertJob(db, { status: "running", leaseExpiresAt: new Date(Date.now() - 1000) });
    let cancelled: Promise<jobs.CancelResult> | undefined;
    await a.transaction(async (tx) => {
      expect((await jobs.rescueOrphans(tx, { horizonSeconds: 3600, maxAttempts: 3 })).requeued).toEqual([first.job_id]);
      cancelled = jobs.cancel(b, { jobId: first.job_id, by: "client" });
      await lockWaiters(db, 1);
    });
    expect(await cancelled).toMatchObject({ outcome: "cancelled", job: { status: "cancelled", attempts: 1 } });

    // The cancel holds the row: the rescue skips it without waiting, and takes it on its next pass.
    const second = await insertJob(db, { status: "running", leaseExpiresAt: new Date(Date.now() - 1000) });
    await a.transaction(async (tx) => {
      expect((await jobs.cancel(tx, { jobId: second.job_id, by: "client" })).outcome).toBe("requested");
      const during = await b.transaction(async (o) => {
        await o.execute(sql`set local lock_timeout = '5s'`);
        return jobs.rescueOrphans(o, { horizonSeconds: 3600, maxAttempts: 3 });
      });
      expect(during).toEqual({ skipped: false, requeued: [], failed: [], cancelled: [] });
    });
    expect((await jobs.rescueOrphans(b, { horizonSeconds: 3600, maxAttempts: 3 })).cancelled).toEqual([second.job_id]);
    expect(await jobs.get(db, second.job_id)).toMatchObject({ status: "cancelled", attempts: 1 });
  });

  test("cancel vs rescue at once on 30 orphans: each ends cancelled, its run counted once", async ({ database }) => {
    const { db } = database;
    const cancels = database.connect({ max: 10 });
    const rescuers = database.connect({ max: 4 });
    const orphans = [];
    for (let i = 0; i < 30; i++) orphans.push(await insertJob(db, { status: "running", leaseExpiresAt: new Date(Date.now() - 1000) }));
    const rescue = () => jobs.rescueOrphans(rescuers, { horizonSeconds: 3600, maxAttempts: 3 });
    const [cancelResults] = await Promise.all([
      Promise.all(orphans.map((job) => jobs.cancel(cancels, { jobId: job.job_id, by: "client" }))),
      Promise.all([rescue(), rescue(), rescue()]),
    ]);
    // Whatever a cancel saw (a run to stop, or a requeued job), one more pass leaves nothing running.
    await rescue();
    for (const [index, job] of orphans.entries()) {
      expect(["requested", "cancelled"]).toContain(cancelResults[index]!.outcome);
      expect(await jobs.get(db, job.job_id), job.job_id).toMatchObject({ status: "cancelled", attempts: 1 });
    }
  });

  test("retry vs retry: of two retries at once, exactly one applies", async ({ database }) => {
    const { db } = database;
    const a = database.connect({ max: 10 });
    const b = database.connect({ max: 10 });
    const failed = [];
    for (let i = 0; i < 30; i++) failed.push(await insertJob(db, { status: i % 2 === 0 ? "error" : "cancelled", maxAttempts: 2 }));
    const pairs = await Promise.all(failed.map((job) => Promise.all([jobs.retry(a, { jobId: job.job_id }), jobs.retry(b, { jobId: job.job_id })])));
    for (const [index, pair] of pairs.entries()) {
      expect(pair.map((r) => r.outcome).sort()).toEqual(["not_retryable", "retried"]);
      const job = (await jobs.get(db, failed[index]!.job_id))!;
      expect(job).toMatchObject({ status: "pending", attempts: 1, max_attempts: 3 });
    }
  });

  test("two cancels at once: a pending job is cancelled once; a running job keeps the first request", async ({ database }) => {
    const { db } = database;
    const a = database.connect({ max: 10 });
    const b = database.connect({ max: 10 });
    const running = [];
    for (let i = 0; i < 15; i++) running.push(await claimed(db));
    const pending = [];
    for (let i = 0; i < 15; i++) pending.push((await jobs.insertPending(db, { request: request() })).job);
    const both = (job: Job) =>
      Promise.all([jobs.cancel(a, { jobId: job.job_id, by: "client" }), jobs.cancel(b, { jobId: job.job_id, by: "operator" })]);
    const [pendingPairs, runningPairs] = await Promise.all([Promise.all(pending.map(both)), Promise.all(running.map(both))]);
    for (const pair of pendingPairs) expect(pair.map((r) => r.outcome).sort()).toEqual(["cancelled", "terminal"]);
    for (const [index, pair] of runningPairs.entries()) {
      expect(pair.map((r) => r.outcome)).toEqual(["requested", "requested"]);
      const [first, second] = pair as [Extract<jobs.CancelResult, { job: Job }>, Extract<jobs.CancelResult, { job: Job }>];
      expect(first.job.cancel_requested_at).toBe(second.job.cancel_requested_at);
      const stored = await row(db, running[index]!.job_id);
      expect(["client", "operator"]).toContain(stored.cancel_requested_by);
    }
  });
});
