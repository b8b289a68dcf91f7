import type { Job } from "@ix/contracts";
import { describe, expect } from "vitest";
import { InvalidCursorError, jobs, sql } from "../src/index.ts";
import { callbackState, insertJob, later, listenFor, request, responseFor, test } from "./fixtures.ts";

describe("insertPending", () => {
  test("creates a pending job with a fresh ix_id, ignoring the client's", async ({ database: { db } }) => {
    const { job, created } = await jobs.insertPending(db, { request: request({ ix_id: "ffffffffffffffff" }) });
    expect(created).toBe(true);
    expect(job.status).toBe("pending");
    expect(job.ix_id).toMatch(/^[0-9a-f]{16}$/);
    expect(job.ix_id).not.toBe("ffffffffffffffff");
    expect(job.request.ix_id).toBe(job.ix_id);
    expect(job).toMatchObject({ attempts: 0, started_at: null, finished_at: null, response: null, callback_status: null });
  });

  test("a second insert of the same key returns the first row unchanged", async ({ database: { db } }) => {
    const req = request();
    const first = await jobs.insertPending(db, { request: req, callbackUrl: "https://a.example/hook" });
    const [claimed] = await jobs.claimPending(db, { limit: 1 });
    const second = await jobs.insertPending(db, { request: req, callbackUrl: "https://b.example/hook" });
    expect(second.created).toBe(false);
    expect(second.job.job_id).toBe(first.job.job_id);
    expect(second.job.ix_id).toBe(first.job.ix_id);
    expect(second.job.callback_url).toBe("https://a.example/hook");
    expect(second.job.status).toBe("running");
    expect(second.job).toEqual(claimed);
    const count = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
    expect(count.rows[0]?.n).toBe(1);
  });

  test("the same request_id from another client is another job", async ({ database: { db } }) => {
    const a = await jobs.insertPending(db, { request: request({ ix_client_id: "a", request_id: "r1" }) });
    const b = await jobs.insertPending(db, { request: request({ ix_client_id: "b", request_id: "r1" }) });
    expect(b.created).toBe(true);
    expect(b.job.job_id).not.toBe(a.job.job_id);
  });

  test("notifies listeners when, and only when, a row is created", async ({ database: { db, url } }) => {
    const listening = await listenFor(url, jobs.PENDING_CHANNEL);
    try {
      const req = request();
      await jobs.insertPending(db, { request: req });
      await jobs.insertPending(db, { request: req });
      await listening.caughtUp();
      expect(listening.heard.map((n) => n.channel)).toEqual([jobs.PENDING_CHANNEL]);
    } finally {
      await listening.close();
    }
  });

  test("inside a rolled-back transaction neither the row nor the wake-up survives", async ({ database: { db } }) => {
    const req = request();
    await expect(
      db.transaction(async (tx) => {
        await jobs.insertPending(tx, { request: req });
        throw new Error("caller aborts");
      }),
    ).rejects.toThrow("caller aborts");
    expect(await jobs.getByCorrelation(db, { clientId: req.ix_client_id, requestId: req.request_id })).toBeNull();
  });
});

describe("get / getByCorrelation", () => {
  test("round-trip the JSONB request and response through the contracts", async ({ database: { db } }) => {
    const req = request({
      context: { texts: ["ünïcødé ✓", ""], files: [{ url: "https://example.com/a.pdf", mime_type: "application/pdf" }] },
      options: { fields: { total: "\\d+\\.\\d{2}" }, nested: [1, { deep: null }] },
    });
    const { job } = await jobs.insertPending(db, { request: req, callbackUrl: "https://hooks.example/x" });
    expect(await jobs.get(db, job.job_id)).toEqual(job);
    expect(await jobs.getByCorrelation(db, { clientId: req.ix_client_id, requestId: req.request_id })).toEqual(job);
    expect(job.request).toEqual({ ...req, ix_id: job.ix_id });

    const [running] = await jobs.claimPending(db, { limit: 1 });
    const response = { ...responseFor(running!), result: { fields: { total: [{ value: "10.00", text_index: 0, start: 1, end: 6 }] } } };
    expect(await jobs.completeMany(db, [{ jobId: job.job_id, attempts: 0, response }])).toEqual([job.job_id]);
    const done = await jobs.get(db, job.job_id);
    expect(done?.response).toEqual(response);
  });

  test("unknown and malformed ids are null, not errors", async ({ database: { db } }) => {
    expect(await jobs.get(db, "00000000-0000-4000-8000-000000000000")).toBeNull();
    expect(await jobs.get(db, "not-a-uuid'; drop table ix_jobs; --")).toBeNull();
    expect(await jobs.getByCorrelation(db, { clientId: "nobody", requestId: "nothing" })).toBeNull();
  });
});

describe("claim", () => {
  test("an empty table yields an empty batch", async ({ database: { db } }) => {
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
    expect(await jobs.claimPending(db, { limit: 10 })).toEqual([]);
  });

  test("takes the oldest pending job first and sets running + started_at", async ({ database: { db } }) => {
    const inserted = [];
    for (let i = 0; i < 5; i++) inserted.push((await jobs.insertPending(db, { request: request() })).job);
    const claimed = [];
    for (let i = 0; i < 5; i++) claimed.push(...(await jobs.claimPending(db, { limit: 1 })));
    expect(claimed.map((j) => j.job_id)).toEqual(inserted.map((j) => j.job_id));
    for (const job of claimed) {
      expect(job.status).toBe("running");
      expect(job.started_at).not.toBeNull();
    }
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
  });

  test("a batch claim returns distinct rows, oldest first, at most limit", async ({ database: { db } }) => {
    const inserted = [];
    for (let i = 0; i < 7; i++) inserted.push((await jobs.insertPending(db, { request: request() })).job.job_id);
    const first = await jobs.claimPending(db, { limit: 3 });
    const second = await jobs.claimPending(db, { limit: 3 });
    const third = await jobs.claimPending(db, { limit: 3 });
    expect(first.map((j) => j.job_id)).toEqual(inserted.slice(0, 3));
    expect(second.map((j) => j.job_id)).toEqual(inserted.slice(3, 6));
    expect(third.map((j) => j.job_id)).toEqual(inserted.slice(6));
  });

  test("rejects a nonsensical limit without touching rows", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    await expect(jobs.claimPending(db, { limit: 0 })).rejects.toThrow(RangeError);
    expect((await jobs.claimPending(db, { limit: 5 })).length).toBe(1);
  });
});

describe("completion", () => {
  test("completion with error null → done; with an error → error", async ({ database: { db } }) => {
    for (let i = 0; i < 3; i++) await jobs.insertPending(db, { request: request() });
    const [a, b, c] = await jobs.claimPending(db, { limit: 3 });
    expect(await jobs.completeMany(db, [{ jobId: a!.job_id, attempts: 0, response: responseFor(a!) }])).toEqual([a!.job_id]);
    expect(await jobs.completeMany(db, [{ jobId: b!.job_id, attempts: 0, response: responseFor(b!, "pipeline failed") }])).toEqual([b!.job_id]);
    expect(await jobs.completeMany(db, [{ jobId: c!.job_id, attempts: 0, response: responseFor(c!, "timed out") }])).toEqual([c!.job_id]);
    const [da, db_, dc] = await Promise.all([a, b, c].map((j) => jobs.get(db, j!.job_id)));
    expect(da?.status).toBe("done");
    expect(db_?.status).toBe("error");
    expect(db_?.response?.error).toBe("pipeline failed");
    expect(dc?.status).toBe("error");
    for (const job of [da, db_, dc]) expect(job?.finished_at).not.toBeNull();
  });

  test("the status comes from the response alone: a response without an error cannot end error", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    const [job] = await jobs.claimPending(db, { limit: 1 });
    expect(await jobs.completeMany(db, [{ jobId: job!.job_id, attempts: 0, response: responseFor(job!) }])).toEqual([job!.job_id]);
    const done = await jobs.get(db, job!.job_id);
    expect(done?.status).toBe("done");
    expect(done?.response?.error).toBeNull();
  });

  test("an invalid response never reaches the row: the job ends error saying which field broke the contract", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    const [job] = await jobs.claimPending(db, { limit: 1 });
    const bad = { ...responseFor(job!), ix_id: "nope" };
    expect(await jobs.completeMany(db, [{ jobId: job!.job_id, attempts: 0, response: bad }])).toEqual([job!.job_id]);
    const stored = await jobs.get(db, job!.job_id);
    expect(stored?.status).toBe("error");
    expect(stored?.response?.ix_id).toBe(job!.ix_id);
    expect(stored?.response?.error).toMatch(/^response could not be stored: it breaks the ResponseIX contract \(ix_id: /);
  });

  test("a pending job cannot be completed", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: request() });
    expect(await jobs.completeMany(db, [{ jobId: job.job_id, attempts: 0, response: responseFor(job) }])).toEqual([]);
    expect((await jobs.get(db, job.job_id))?.status).toBe("pending");
  });

  test("fencing: after rescue and reclaim the first claimer's completion applies to nothing", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    const [firstRun] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
    const rescued = await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3, now: later() });
    expect(rescued.requeued).toEqual([firstRun.job_id]);
    const [secondRun] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
    expect(secondRun.attempts).toBe(1);

    const stale = await jobs.completeMany(db, [{ jobId: firstRun.job_id, attempts: firstRun.attempts, response: responseFor(firstRun, "stale") }]);
    expect(stale).toEqual([]);
    expect(await jobs.get(db, firstRun.job_id)).toEqual(secondRun);

    const fresh = responseFor(secondRun);
    expect(await jobs.completeMany(db, [{ jobId: secondRun.job_id, attempts: secondRun.attempts, response: fresh }])).toEqual([secondRun.job_id]);
    const done = await jobs.get(db, secondRun.job_id);
    expect(done?.response).toEqual(fresh);

    // Terminal rows never change status again: not by completion, rescue or claim.
    expect(await jobs.completeMany(db, [{ jobId: done!.job_id, attempts: 1, response: responseFor(secondRun, "again") }])).toEqual([]);
    expect(await jobs.rescueOrphans(db, { horizonSeconds: 0, maxAttempts: 3, now: later() })).toEqual({ skipped: false, requeued: [], failed: [], cancelled: [] });
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
    expect(await jobs.get(db, done!.job_id)).toEqual(done);
  });

  test("completeMany applies per row and reports exactly the rows it changed", async ({ database: { db } }) => {
    for (let i = 0; i < 4; i++) await jobs.insertPending(db, { request: request() });
    const claimed = await jobs.claimPending(db, { limit: 4 });
    const applied = await jobs.completeMany(db, [
      { jobId: claimed[0]!.job_id, attempts: 0, response: responseFor(claimed[0]!) },
      { jobId: claimed[1]!.job_id, attempts: 7, response: responseFor(claimed[1]!) }, // wrong fence
      { jobId: claimed[2]!.job_id, attempts: 0, response: responseFor(claimed[2]!, "boom") },
    ]);
    expect(applied.sort()).toEqual([claimed[0]!.job_id, claimed[2]!.job_id].sort());
    const statuses = await Promise.all(claimed.map(async (j) => (await jobs.get(db, j.job_id))?.status));
    expect(statuses).toEqual(["done", "running", "error", "running"]);
  });
});

describe("rescueOrphans", () => {
  test("resets stale running rows and leaves fresh running, pending and terminal rows alone", async ({ database: { db } }) => {
    for (let i = 0; i < 3; i++) await jobs.insertPending(db, { request: request() });
    const [stale, terminal] = await jobs.claimPending(db, { limit: 2 });
    await jobs.completeMany(db, [{ jobId: terminal!.job_id, attempts: 0, response: responseFor(terminal!) }]);
    // Backdate one running row past the horizon, on the database's clock.
    await db.execute(sql`update ix_jobs set started_at = now() - interval '10 minutes' where job_id = ${stale!.job_id}`);
    await jobs.insertPending(db, { request: request() });
    const [fresh] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
    const before = await db.execute(sql`select * from ix_jobs where job_id <> ${stale!.job_id} order by job_id`);

    const result = await jobs.rescueOrphans(db, { horizonSeconds: 120, maxAttempts: 3 });
    expect(result).toEqual({ skipped: false, requeued: [stale!.job_id], failed: [], cancelled: [] });
    const rescued = await jobs.get(db, stale!.job_id);
    expect(rescued).toMatchObject({ status: "pending", attempts: 1, started_at: null, finished_at: null, response: null });
    const after = await db.execute(sql`select * from ix_jobs where job_id <> ${stale!.job_id} order by job_id`);
    expect(after.rows).toEqual(before.rows);
    expect((await jobs.get(db, fresh.job_id))?.status).toBe("running");
  });

  test("an explicit now decides what is stale", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request() });
    // A lease longer than the horizon, so the horizon decides here (the lease has its own test).
    const [job] = (await jobs.claimPending(db, { limit: 1, leaseSeconds: 3600 })) as [Job];
    const startedAt = new Date(job.started_at!);
    const justBefore = new Date(startedAt.getTime() + 59_000);
    expect(await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3, now: justBefore })).toEqual({ skipped: false, requeued: [], failed: [], cancelled: [] });
    const justAfter = new Date(startedAt.getTime() + 61_000);
    expect((await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3, now: justAfter })).requeued).toEqual([job.job_id]);
  });

  test("at IX_MAX_ATTEMPTS the orphan ends error with a response that says why", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [claimed] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
      expect(claimed.attempts).toBe(attempt - 1);
      const result = await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3, now: later() });
      expect(result).toEqual({ skipped: false, requeued: attempt < 3 ? [job.job_id] : [], failed: attempt < 3 ? [] : [job.job_id], cancelled: [] });
    }
    const failed = (await jobs.get(db, job.job_id))!;
    expect(failed.status).toBe("error");
    expect(failed.attempts).toBe(3);
    expect(failed.finished_at).not.toBeNull();
    expect(failed.response).toMatchObject({
      ix_id: job.ix_id,
      request_id: job.request_id,
      result: null,
      metadata: { pipeline: "extract_fields", attempt: 3 },
    });
    expect(failed.response?.error).toMatch(/orphaned 3 times/);
    // The failure is a terminal state, so its callback becomes due.
    const due = await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30, now: later(7200) });
    expect(due.map((d) => d.job.job_id)).toEqual([job.job_id]);
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
  });

  test("a given-up orphan keeps its started_at to the microsecond; its callback is due when it finished", async ({
    database: { db },
  }) => {
    const orphan = await insertJob(db, {
      status: "running",
      attempts: 2,
      startedAt: new Date(Date.now() - 3_600_000),
      callbackUrl: "https://hooks.example/a",
    });
    await db.execute(sql`update ix_jobs set started_at = started_at + interval '123 microseconds' where job_id = ${orphan.job_id}`);
    const times = () =>
      db.execute<{ started: string; finished: string | null; due: string | null }>(
        sql`select started_at::text as started, finished_at::text as finished, callback_next_attempt_at::text as due
            from ix_jobs where job_id = ${orphan.job_id}`,
      );
    const before = (await times()).rows[0]!;
    expect(await jobs.rescueOrphans(db, { horizonSeconds: 60, maxAttempts: 3 })).toEqual({ skipped: false, requeued: [], failed: [orphan.job_id], cancelled: [] });
    const after = (await times()).rows[0]!;
    expect(after.started).toBe(before.started);
    expect(after.finished).not.toBeNull();
    expect(after.due).toBe(after.finished);
    const failed = (await jobs.get(db, orphan.job_id))!;
    expect(failed.response?.metadata).toMatchObject({ started_at: failed.started_at, finished_at: failed.finished_at, attempt: 3 });
  });

  test("inside a caller's transaction it applies or rolls back with it", async ({ database: { db } }) => {
    const orphan = await insertJob(db, { status: "running", startedAt: new Date(Date.now() - 3_600_000) });
    await expect(
      db.transaction(async (tx) => {
        expect((await jobs.rescueOrphans(tx, { horizonSeconds: 60, maxAttempts: 3 })).requeued).toEqual([orphan.job_id]);
        throw new Error("caller aborts");
      }),
    ).rejects.toThrow("caller aborts");
    expect(await jobs.get(db, orphan.job_id)).toEqual(orphan);
    const rescued = await db.transaction((tx) => jobs.rescueOrphans(tx, { horizonSeconds: 60, maxAttempts: 3 }));
    expect(rescued.requeued).toEqual([orphan.job_id]);
  });

  test("skips an orphan another transaction holds, without waiting for it", async ({ database: { db } }) => {
    const held = await insertJob(db, { status: "running", startedAt: new Date(Date.now() - 3_600_000) });
    const free = await insertJob(db, { status: "running", startedAt: new Date(Date.now() - 3_600_000) });
    await db.transaction(async (tx) => {
      await tx.execute(sql`select 1 from ix_jobs where job_id = ${held.job_id} for update`);
      const result = await db.transaction(async (other) => {
        await other.execute(sql`set local lock_timeout = '5s'`);
        return jobs.rescueOrphans(other, { horizonSeconds: 60, maxAttempts: 3 });
      });
      expect(result).toEqual({ skipped: false, requeued: [free.job_id], failed: [], cancelled: [] });
    });
    expect((await jobs.get(db, held.job_id))?.status).toBe("running");
  });
});

describe("callback delivery bookkeeping", () => {
  test("due deliveries are claimed once per attempt, leased, fenced and resolved", async ({ database: { db } }) => {
    const { job } = await jobs.insertPending(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    await jobs.insertPending(db, { request: request() }); // no callback_url: never due
    const claimed = await jobs.claimPending(db, { limit: 2 });
    for (const c of claimed) await jobs.completeMany(db, [{ jobId: c.job_id, attempts: 0, response: responseFor(c) }]);

    const first = await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30 });
    expect(first.map((d) => [d.job.job_id, d.attempt])).toEqual([[job.job_id, 1]]);
    // Leased: a second claimer finds nothing until the lease runs out.
    expect(await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30 })).toEqual([]);

    expect(await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: 1, outcome: { kind: "retry", error: "HTTP 500", delaySeconds: 5 } })).toBe(true);
    expect(await callbackState(db, job.job_id)).toMatchObject({ attempts: 1, lastError: "HTTP 500" });
    expect(await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30 })).toEqual([]);
    const second = await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30, now: later(10) });
    expect(second.map((d) => d.attempt)).toEqual([2]);

    // A late outcome of attempt 1 cannot overwrite attempt 2.
    expect(await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: 1, outcome: { kind: "delivered" } })).toBe(false);
    expect(await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: 2, outcome: { kind: "delivered" } })).toBe(true);
    expect((await jobs.get(db, job.job_id))?.callback_status).toBe("delivered");
    expect(await callbackState(db, job.job_id)).toEqual({ attempts: 2, nextAttemptAt: null, lastError: null });
    expect(await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30, now: later() })).toEqual([]);
  });

  test("a failed outcome is final", async ({ database: { db } }) => {
    await jobs.insertPending(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    const [job] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
    await jobs.completeMany(db, [{ jobId: job.job_id, attempts: 0, response: responseFor(job) }]);
    const [delivery] = await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30 });
    expect(await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: delivery!.attempt, outcome: { kind: "failed", error: "HTTP 410" } })).toBe(true);
    expect((await jobs.get(db, job.job_id))?.callback_status).toBe("failed");
    expect(await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30, now: later() })).toEqual([]);
  });
});

describe("listJobs", () => {
  test("pages a client's jobs newest first by keyset, filtered by status", async ({ database: { db } }) => {
    const mine = [];
    for (let i = 0; i < 7; i++) mine.push((await jobs.insertPending(db, { request: request({ ix_client_id: "me" }) })).job.job_id);
    await jobs.insertPending(db, { request: request({ ix_client_id: "other" }) });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await jobs.listJobs(db, { clientId: "me", limit: 3, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((j) => j.job_id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...mine].reverse());
    const running = await jobs.listJobs(db, { clientId: "me", status: "running", limit: 10 });
    expect(running.items).toEqual([]);
    await expect(jobs.listJobs(db, { clientId: "me", limit: 3, cursor: "garbage" })).rejects.toThrow(InvalidCursorError);
    // Decodes, but holds an instant PostgreSQL rejects: still the cursor's fault, not a database error.
    const forged = Buffer.from(JSON.stringify(["99999-01-01T00:00:00Z", "00000000-0000-4000-8000-000000000000"])).toString("base64url");
    await expect(jobs.listJobs(db, { clientId: "me", limit: 3, cursor: forged })).rejects.toThrow(InvalidCursorError);
  });
});

describe("pruneTerminal", () => {
  test("deletes only terminal jobs past retention whose callback is settled", async ({ database: { db } }) => {
    for (let i = 0; i < 4; i++) await jobs.insertPending(db, { request: request() });
    await jobs.insertPending(db, { request: request(), callbackUrl: "https://hooks.example/a" });
    const claimed = await jobs.claimPending(db, { limit: 4 });
    // 3 finished; 1 running; 1 pending (with a callback, claimed next and finished: callback still due).
    for (const c of claimed.slice(0, 3)) await jobs.completeMany(db, [{ jobId: c.job_id, attempts: 0, response: responseFor(c) }]);
    const [withCallback] = (await jobs.claimPending(db, { limit: 1 })) as [Job];
    await jobs.completeMany(db, [{ jobId: withCallback.job_id, attempts: 0, response: responseFor(withCallback) }]);

    expect(await jobs.pruneTerminal(db, { olderThanSeconds: 3600, batchSize: 100 })).toBe(0);
    expect(await jobs.pruneTerminal(db, { olderThanSeconds: 3600, batchSize: 2, now: later(7200) })).toBe(2);
    expect(await jobs.pruneTerminal(db, { olderThanSeconds: 3600, batchSize: 2, now: later(7200) })).toBe(1);
    expect(await jobs.pruneTerminal(db, { olderThanSeconds: 3600, batchSize: 2, now: later(7200) })).toBe(0);
    const left = await db.execute<{ status: string }>(sql`select status from ix_jobs order by status`);
    expect(left.rows.map((r) => r.status)).toEqual(["done", "running"]);
  });
});
