import type { Job } from "@ix/contracts";
import { describe, expect } from "vitest";
import { type Database, jobs, sql } from "../src/index.ts";
import { listenFor, request, responseFor, test } from "./fixtures.ts";
import { waitFor } from "../../testing/src/wait.ts";

async function databaseNow(db: Database): Promise<Date> {
  const { rows } = await db.execute<{ ms: number }>(sql`select (extract(epoch from now()) * 1000)::float8 as ms`);
  return new Date(rows[0]!.ms);
}

/** `count` submissions of one client, in batches of 500 as the API's batcher would send them. */
async function submitMany(db: Database, clientId: string, count: number, extra: Partial<jobs.InsertPendingParams> = {}): Promise<Job[]> {
  const submitted: Job[] = [];
  for (let start = 0; start < count; start += 500) {
    const batch = Array.from({ length: Math.min(500, count - start) }, (_, i) => ({
      request: request({ ix_client_id: clientId, request_id: `${clientId}-${start + i}` }),
      ...extra,
    }));
    submitted.push(...(await jobs.insertPendingMany(db, batch)).map((result) => result.job));
  }
  return submitted;
}

const ids = (list: Job[]) => list.map((job) => job.job_id);

describe("claim order", () => {
  test("higher priority first, whatever the client and the submission order", async ({ database: { db } }) => {
    const low = (await jobs.insertPending(db, { request: request({ ix_client_id: "a" }), priority: -5 })).job;
    const normal = (await jobs.insertPending(db, { request: request({ ix_client_id: "b" }) })).job;
    const urgent = (await jobs.insertPending(db, { request: request({ ix_client_id: "c" }), priority: 100 })).job;
    const high = (await jobs.insertPending(db, { request: request({ ix_client_id: "a" }), priority: 10 })).job;
    expect(ids(await jobs.claimPending(db, { limit: 10 }))).toEqual(ids([urgent, high, normal, low]));
  });

  test("within a priority clients take turns, each client's jobs oldest first", async ({ database: { db } }) => {
    const a = await submitMany(db, "a", 6);
    const b = await submitMany(db, "b", 3);
    const claimed = await jobs.claimPending(db, { limit: 9 });
    expect(claimed.map((job) => job.client_id)).toEqual(["a", "b", "a", "b", "a", "b", "a", "a", "a"]);
    expect(ids(claimed.filter((job) => job.client_id === "a"))).toEqual(ids(a));
    expect(ids(claimed.filter((job) => job.client_id === "b"))).toEqual(ids(b));
  });

  test("a client arriving while another's backlog runs starts from where the workers are, not behind the backlog", async ({
    database: { db },
  }) => {
    await submitMany(db, "a", 100);
    const first = await jobs.claimPending(db, { limit: 40 }); // a's 40 oldest are running
    expect(first.every((job) => job.client_id === "a")).toBe(true);
    await submitMany(db, "b", 5);
    const next = await jobs.claimPending(db, { limit: 10 });
    expect(next.map((job) => job.client_id)).toEqual(["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
  });

  test("a job is not claimed before its run_at by the database's clock", async ({ database: { db } }) => {
    const runAt = new Date((await databaseNow(db)).getTime() + 1_500);
    const { job } = await jobs.insertPending(db, { request: request(), runAt });
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
    while ((await databaseNow(db)) < runAt) await new Promise((resolve) => setTimeout(resolve, 100));
    const [claimed] = await jobs.claimPending(db, { limit: 1 });
    expect(claimed?.job_id).toBe(job.job_id);
    expect(new Date(claimed!.started_at!).getTime()).toBeGreaterThanOrEqual(runAt.getTime());
  });

  test("a job waiting for its run_at takes its turn when due: after its client's jobs already queued", async ({ database: { db } }) => {
    const soon = new Date((await databaseNow(db)).getTime() + 60_000);
    const waiting = (await jobs.insertPending(db, { request: request({ ix_client_id: "a" }), runAt: soon })).job;
    const first = (await jobs.insertPending(db, { request: request({ ix_client_id: "a" }) })).job;
    const second = (await jobs.insertPending(db, { request: request({ ix_client_id: "a" }) })).job;
    const now = await databaseNow(db);
    expect(ids(await jobs.claimPending(db, { limit: 1, now }))).toEqual([first.job_id]);
    expect(ids(await jobs.claimPending(db, { limit: 5, now: soon }))).toEqual([second.job_id, waiting.job_id]);
  });

  test("jobs that become due together: the claim that gives them turns wakes listeners, and 8 claimers share them", async ({
    database,
  }) => {
    const { db, url } = database;
    const runAt = new Date((await databaseNow(db)).getTime() + 1_000);
    const waiting = new Set(ids(await submitMany(db, "a", 200, { runAt })));
    while ((await databaseNow(db)) < runAt) await new Promise((resolve) => setTimeout(resolve, 50));
    const listening = await listenFor(url, jobs.PENDING_CHANNEL);
    try {
      const [first, ...rest] = await jobs.claimPending(db, { limit: 1 });
      expect(rest).toEqual([]);
      expect(waiting.has(first!.job_id)).toBe(true);
      await waitFor("a wake-up", () => listening.heard.length > 0, { timeoutMs: 5_000 });
    } finally {
      await listening.close();
    }
    const pool = database.connect({ max: 8 });
    const claims = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const mine: string[] = [];
        for (;;) {
          const got = await jobs.claimPending(pool, { limit: 3 });
          if (got.length === 0) return mine;
          mine.push(...ids(got));
        }
      }),
    );
    const all = claims.flat();
    expect(all).toHaveLength(199);
    expect(new Set(all).size).toBe(199);
    expect(claims.filter((mine) => mine.length > 0).length).toBeGreaterThan(1);
  });

  test("100,000 jobs waiting for tomorrow are not in the claim's way", async ({ database: { db } }) => {
    const tomorrow = new Date((await databaseNow(db)).getTime() + 86_400_000);
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, request, use_case, run_at)
      select lpad(to_hex(g), 16, '0'), 'late', 'l' || g, '{}'::jsonb, 'extract_fields', ${tomorrow.toISOString()}::timestamptz
      from generate_series(1, 100000) as g`);
    const { job } = await jobs.insertPending(db, { request: request({ ix_client_id: "now" }) });
    await db.execute(sql`analyze ix_jobs`);
    const { sql: text, params } = jobs.claimPendingStatement(db, { limit: 1, useCases: ["extract_fields"] }).toSQL();
    const { rows } = await db.$client.query<{ "QUERY PLAN": string }>(`explain (analyze, buffers, format json) ${text}`, params);
    const plan = JSON.stringify(rows);
    expect(plan).not.toMatch(/Seq Scan/);
    // Shared buffers touched: a handful of index and heap pages, not the 100,000 rows' (~2,000 pages).
    const top = (rows[0] as unknown as { "QUERY PLAN": Array<{ Plan: { "Shared Hit Blocks": number; "Shared Read Blocks": number } }> })["QUERY PLAN"][0]!
      .Plan;
    expect(top["Shared Hit Blocks"] + top["Shared Read Blocks"]).toBeLessThan(200);
    // EXPLAIN ANALYZE ran the claim: the due job was taken.
    expect((await jobs.get(db, job.job_id))?.status).toBe("running");
  });
});

describe("routing", () => {
  test("a claimer gets only the use_cases it names; without names, every use_case", async ({ database: { db } }) => {
    const ocr = (await jobs.insertPending(db, { request: request({ use_case: "ocr" }) })).job;
    const llm = (await jobs.insertPending(db, { request: request({ use_case: "llm" }) })).job;
    const other = (await jobs.insertPending(db, { request: request({ use_case: "other" }) })).job;
    expect(await jobs.claimPending(db, { limit: 5, useCases: ["nothing-here"] })).toEqual([]);
    expect(ids(await jobs.claimPending(db, { limit: 5, useCases: ["ocr"] }))).toEqual([ocr.job_id]);
    expect(ids(await jobs.claimPending(db, { limit: 5, useCases: ["llm", "ocr"] }))).toEqual([llm.job_id]);
    expect(ids(await jobs.claimPending(db, { limit: 5 }))).toEqual([other.job_id]);
  });

  test("a claimer of several use_cases alternates between their queues", async ({ database: { db } }) => {
    await submitMany(db, "a", 5, {});
    for (let i = 0; i < 5; i++) await jobs.insertPending(db, { request: request({ ix_client_id: "a", use_case: "ocr" }) });
    const claimed = await jobs.claimPending(db, { limit: 6, useCases: ["extract_fields", "ocr"] });
    expect(claimed.map((job) => job.request.use_case).sort()).toEqual(["extract_fields", "extract_fields", "extract_fields", "ocr", "ocr", "ocr"]);
  });
});

describe("concurrency caps", () => {
  test("8 concurrent claimers never run more than the cap of a use_case, and other use_cases are not held back", async ({ database }) => {
    const { db } = database;
    const CAP = 3;
    for (const useCase of ["capped", "free"]) {
      await jobs.insertPendingMany(
        db,
        Array.from({ length: 120 }, () => ({ request: request({ use_case: useCase }) })),
      );
    }
    const pool = database.connect({ max: 10 });
    let maxCapped = 0;
    let maxFree = 0;
    const done = { capped: 0, free: 0 };
    await Promise.all(
      Array.from({ length: 8 }, async (_, claimer) => {
        for (;;) {
          const claimed = await jobs.claimPending(pool, { limit: 4, useCases: ["capped", "free"], useCaseConcurrency: { capped: CAP } });
          if (claimed.length === 0) {
            const { rows } = await pool.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where status <> 'done'`);
            if (rows[0]!.n === 0) return;
            await new Promise((resolve) => setTimeout(resolve, 2));
            continue;
          }
          // Right after this claim committed: what runs now, across all claimers.
          const { rows } = await pool.execute<{ use_case: string; n: number }>(
            sql`select use_case, count(*)::int as n from ix_jobs where status = 'running' group by use_case`,
          );
          for (const row of rows) {
            if (row.use_case === "capped") maxCapped = Math.max(maxCapped, row.n);
            else maxFree = Math.max(maxFree, row.n);
          }
          await new Promise((resolve) => setTimeout(resolve, 1 + (claimer % 3)));
          await jobs.completeMany(
            pool,
            claimed.map((job) => ({ jobId: job.job_id, attempts: job.attempts, response: responseFor(job) })),
          );
          for (const job of claimed) done[job.request.use_case as "capped" | "free"] += 1;
        }
      }),
    );
    expect(done).toEqual({ capped: 120, free: 120 });
    expect(maxCapped).toBeLessThanOrEqual(CAP);
    expect(maxCapped).toBe(CAP); // the cap is used, not just respected
    expect(maxFree).toBeGreaterThan(CAP);
  });

  test("a cap counts runs of every claimer, and a claimer without room gets other use_cases' jobs", async ({ database: { db } }) => {
    for (let i = 0; i < 3; i++) await jobs.insertPending(db, { request: request({ use_case: "capped" }) });
    const free = (await jobs.insertPending(db, { request: request({ use_case: "free" }) })).job;
    const caps = { capped: 2 };
    expect(await jobs.claimPending(db, { limit: 2, useCases: ["capped"], useCaseConcurrency: caps })).toHaveLength(2);
    const next = await jobs.claimPending(db, { limit: 5, useCases: ["capped", "free"], useCaseConcurrency: caps });
    expect(ids(next)).toEqual([free.job_id]);
    expect(() => jobs.claimPendingStatement(db, { limit: 1, useCaseConcurrency: { capped: 0 } })).toThrow(/capped.*positive integer/);
  });

  test("only the caps of the use_cases a claimer takes bind it: it never waits on another use_case's cap lock", async ({ database }) => {
    const { db } = database;
    const capped = (await jobs.insertPending(db, { request: request({ use_case: "capped" }) })).job;
    const free = (await jobs.insertPending(db, { request: request({ use_case: "free" }) })).job;
    const caps = { capped: 1 };
    // A waiting lock would outlast this and fail the claim instead of hanging the test.
    const other = database.connect({ max: 1, statementTimeoutMillis: 5_000 });
    await database.connect({ max: 1 }).transaction(async (tx) => {
      // Still inside its transaction, this claimer holds the lock of "capped".
      expect(ids(await jobs.claimPending(tx, { limit: 1, useCases: ["capped"], useCaseConcurrency: caps }))).toEqual([capped.job_id]);
      expect(ids(await jobs.claimPending(other, { limit: 5, useCases: ["free"], useCaseConcurrency: caps }))).toEqual([free.job_id]);
    });
    // A bad cap is refused before anything is locked or claimed.
    const next = (await jobs.insertPending(db, { request: request({ use_case: "free" }) })).job;
    await expect(jobs.claimPending(db, { limit: 1, useCases: ["free"], useCaseConcurrency: { free: 0 } })).rejects.toThrow(
      /"free".*positive integer, got 0/,
    );
    expect((await jobs.get(db, next.job_id))?.status).toBe("pending");
  });
});

describe("fair share", () => {
  test("with 10,000 of client A's jobs pending first, all 20 of B's start before A starts 100 more", async ({ database }) => {
    const { db } = database;
    await submitMany(db, "A", 10_000);
    const b = new Set(ids(await submitMany(db, "B", 20)));
    const pool = database.connect({ max: 8 });
    let aStarted = 0;
    let bStarted = 0;
    let aBeforeLastB: number | null = null;
      // Eight claimers at full speed, each claiming a batch, recording starts in claim order, then completing.
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (aBeforeLastB === null) {
            const claimed = await jobs.claimPending(pool, { limit: 8 });
            if (claimed.length === 0) break;
            for (const job of claimed) {
              if (b.has(job.job_id)) bStarted += 1;
              else aStarted += 1;
              if (bStarted === b.size && aBeforeLastB === null) aBeforeLastB = aStarted;
            }
            await jobs.completeMany(
              pool,
              claimed.map((job) => ({ jobId: job.job_id, attempts: job.attempts, response: responseFor(job) })),
            );
          }
        }),
      );
    console.log(`fair share: ${aBeforeLastB} of A's jobs started before B's last (10,000 A pending first, 20 B after)`);
    expect(aBeforeLastB).not.toBeNull();
    expect(aBeforeLastB!).toBeLessThanOrEqual(100);
  }, 120_000);
});
