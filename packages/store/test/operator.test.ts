import type { Job } from "@ix/contracts";
import { describe, expect } from "vitest";
import { jobs, sql, workers } from "../src/index.ts";
import { insertJob, listenFor, request, test } from "./fixtures.ts";

// What the dashboard and the operator routes read and do: every client's jobs, the overview, bulk retry.

const at = (iso: string) => new Date(iso);

describe("listJobs across clients", () => {
  test("pages every client's jobs newest first, filtered by status and use_case, with the keyset cursor", async ({ database: { db } }) => {
    const made: Job[] = [];
    for (let i = 0; i < 9; i++) {
      made.push(
        await insertJob(db, {
          request: request({ ix_client_id: `c${i % 3}`, use_case: i % 2 === 0 ? "extract_fields" : "ocr" }),
          status: i % 4 === 0 ? "error" : "done",
          createdAt: at(`2026-01-01T00:00:0${i}.123456Z`),
        }),
      );
    }
    const newestFirst = [...made].reverse().map((j) => j.job_id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await jobs.listJobs(db, { limit: 4, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((j) => j.job_id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(newestFirst);

    const ocr = await jobs.listJobs(db, { limit: 50, useCase: "ocr" });
    expect(ocr.items.map((j) => j.job_id)).toEqual(newestFirst.filter((id) => made.find((j) => j.job_id === id)!.request.use_case === "ocr"));
    const failed = await jobs.listJobs(db, { limit: 2, status: "error" });
    expect(failed.items.map((j) => j.job_id)).toEqual([made[8]!.job_id, made[4]!.job_id]);
    const rest = await jobs.listJobs(db, { limit: 2, status: "error", cursor: failed.nextCursor! });
    expect(rest).toEqual({ items: [made[0]], nextCursor: null });
    const oneClient = await jobs.listJobs(db, { limit: 50, clientId: "c1", useCase: "ocr" });
    expect(oneClient.items.map((j) => j.client_id + j.request.use_case)).toEqual(["c1ocr", "c1ocr"]);
  });

  test("the failed listing reads ix_jobs_failed_idx, the all-clients listing the client index", async ({ database: { db } }) => {
    await db.execute(sql`set enable_seqscan = off`);
    const plan = async (q: ReturnType<typeof sql>) =>
      (await db.execute<{ "QUERY PLAN": string }>(sql`explain ${q}`)).rows.map((r) => r["QUERY PLAN"]).join("\n");
    expect(await plan(sql`select job_id from ix_jobs where status = 'error' order by created_at desc, job_id desc limit 51`)).toContain(
      "ix_jobs_failed_idx",
    );
  });
});

describe("retryFailed", () => {
  test("retries the filter's failed jobs oldest first, as a single retry would, bounded by limit", async ({ database: { db } }) => {
    const failed: Job[] = [];
    for (let i = 0; i < 5; i++) {
      failed.push(
        await insertJob(db, {
          request: request({ ix_client_id: i < 4 ? "a" : "b" }),
          status: "error",
          attempts: 1,
          maxAttempts: 2,
          createdAt: at(`2026-01-01T00:00:0${i}Z`),
          callbackUrl: "https://hooks.example/x",
          callbackStatus: "delivered",
          callbackAttempts: 1,
        }),
      );
    }
    const done = await insertJob(db, { request: request({ ix_client_id: "a" }), status: "done" });
    const cancelled = await insertJob(db, { request: request({ ix_client_id: "a" }), status: "cancelled" });

    expect(await jobs.countFailed(db, { clientId: "a", cap: 1000 })).toBe(4);
    expect(await jobs.countFailed(db, { cap: 2 })).toBe(3); // capped: "more than 2"
    const first = await jobs.retryFailed(db, { clientId: "a", limit: 3 });
    expect(first.retried).toEqual(failed.slice(0, 3).map((j) => j.job_id));
    for (const job of failed.slice(0, 3)) {
      const after = (await jobs.get(db, job.job_id))!;
      expect(after).toMatchObject({ status: "pending", attempts: 2, max_attempts: 3, response: null, started_at: null, callback_status: null });
    }
    expect((await jobs.get(db, failed[3]!.job_id))!.status).toBe("error");
    expect((await jobs.get(db, failed[4]!.job_id))!.status).toBe("error"); // client b
    expect((await jobs.get(db, done.job_id))!.status).toBe("done");
    expect((await jobs.get(db, cancelled.job_id))!.status).toBe("cancelled");
    expect((await jobs.retryFailed(db, { clientId: "a", limit: 3 })).retried).toEqual([failed[3]!.job_id]);
    expect((await jobs.retryFailed(db, { clientId: "a", limit: 3 })).retried).toEqual([]);
  });

  test("skips rows another transaction holds, and refuses an unbounded limit", async ({ database: { db } }) => {
    const held = await insertJob(db, { status: "error", createdAt: at("2026-01-01T00:00:00Z") });
    const free = await insertJob(db, { status: "error", createdAt: at("2026-01-01T00:00:01Z") });
    let release!: () => void;
    const holding = db.transaction(async (tx) => {
      await tx.execute(sql`select 1 from ix_jobs where job_id = ${held.job_id} for update`);
      await new Promise<void>((resolve) => (release = resolve));
    });
    try {
      await expect.poll(() => release !== undefined).toBe(true);
      expect((await jobs.retryFailed(db, { limit: 10 })).retried).toEqual([free.job_id]);
    } finally {
      release();
      await holding;
    }
    await expect(jobs.retryFailed(db, { limit: 1001 })).rejects.toThrow("limit must be an integer from 1 to 1000");
    await expect(jobs.countFailed(db, { cap: 0 })).rejects.toThrow(RangeError);
  });

  test("wakes idle workers once", async ({ database: { db, url } }) => {
    const listening = await listenFor(url, jobs.PENDING_CHANNEL);
    try {
      await insertJob(db, { status: "error" });
      await jobs.retryFailed(db, { limit: 5 });
      await expect.poll(() => listening.heard.map((n) => n.channel)).toEqual([jobs.PENDING_CHANNEL]);
    } finally {
      await listening.close();
    }
  });
});

describe("queueOverview", () => {
  test("counts live jobs by use_case and status, finished ones within the hour, and charts each minute", async ({ database: { db } }) => {
    const now = at("2026-03-01T12:00:30Z");
    const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
    await insertJob(db, { request: request({ use_case: "ocr" }), status: "pending" });
    await insertJob(db, { request: request({ use_case: "ocr" }), status: "pending", fairTag: undefined, runAt: at("2027-01-01T00:00:00Z") });
    await insertJob(db, { request: request({ use_case: "ocr" }), status: "running" });
    // Finished 30 s ago after waiting 2 s and 4 s; one an hour and a half ago (outside the window).
    for (const wait of [2, 4]) {
      await insertJob(db, { status: "done", createdAt: ago(100), runAt: ago(100), startedAt: ago(100 - wait), finishedAt: ago(30) });
    }
    await insertJob(db, { status: "error", createdAt: ago(200), runAt: ago(200), startedAt: ago(199), finishedAt: ago(150) });
    await insertJob(db, { status: "done", createdAt: ago(5_500), startedAt: ago(5_450), finishedAt: ago(5_400) });

    const overview = await jobs.queueOverview(db, { now });
    expect(overview.at).toEqual(now);
    expect(overview.counts).toEqual([
      { useCase: "extract_fields", status: "done", count: 2 },
      { useCase: "extract_fields", status: "error", count: 1 },
      { useCase: "ocr", status: "pending", count: 2 },
      { useCase: "ocr", status: "running", count: 1 },
    ]);
    expect(overview.minutes).toHaveLength(jobs.OVERVIEW_WINDOW_MINUTES);
    expect(overview.minutes.at(-1)).toEqual({ minute: at("2026-03-01T12:00:00Z"), finished: 2, waitP50Ms: 3000, waitP95Ms: 3900 });
    expect(overview.minutes.at(-3)).toMatchObject({ minute: at("2026-03-01T11:58:00Z"), finished: 1, waitP50Ms: 1000 });
    expect(overview.minutes.reduce((n, m) => n + m.finished, 0)).toBe(3);
  });
});

describe("inspect and liveWorkers", () => {
  test("a job's callback state and lease; the workers seen lately", async ({ database: { db } }) => {
    const job = await insertJob(db, {
      status: "done",
      callbackUrl: "https://hooks.example/x",
      callbackAttempts: 3,
      callbackLastError: "HTTP 503 from hooks.example",
      callbackNextAttemptAt: at("2026-01-01T00:00:00Z"),
    });
    expect(await jobs.inspect(db, job.job_id)).toEqual({
      job,
      callback: { attempts: 3, nextAttemptAt: at("2026-01-01T00:00:00Z"), lastError: "HTTP 503 from hooks.example" },
      leaseExpiresAt: null,
      cancelRequestedBy: null,
    });
    expect(await jobs.inspect(db, "not-a-uuid")).toBeNull();

    await workers.registerWorker(db, { id: crypto.randomUUID(), host: "h1", pid: 10, useCases: ["ocr", "a"], concurrency: 4 });
    const stale = crypto.randomUUID();
    await workers.registerWorker(db, { id: stale, host: "h2", pid: 11, useCases: ["b"], concurrency: 1 });
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '5 minutes' where id = ${stale}`);
    const live = await workers.liveWorkers(db, { withinSeconds: 60 });
    expect(live.map((w) => [w.host, w.useCases])).toEqual([["h1", ["a", "ocr"]]]);
  });
});
