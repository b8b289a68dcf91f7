import { hostname } from "node:os";
import { ConfigError, type Job } from "@ix/contracts";
import { test } from "@ix/testing";
import { ixWorkers, jobs, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { createWorker, definePipeline } from "../src";
import { capturingLogger, submit, testConfig, waitFor } from "./fixtures";

/** A pipeline that stamps its result with the worker that ran it, and counts its runs. */
function stamped(name: string, by: string) {
  const ran: string[] = [];
  const pipeline = definePipeline({
    name,
    run: (request) => {
      ran.push(request.request_id);
      return { by };
    },
  });
  return { pipeline, ran };
}

async function jobsById(db: Parameters<typeof jobs.get>[0], ids: string[]): Promise<Job[]> {
  return Promise.all(
    ids.map(async (id) => {
      const job = await jobs.get(db, id);
      if (!job) throw new Error(`job ${id} vanished`);
      return job;
    }),
  );
}

function thrown(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("routing: a worker claims only the use_cases it serves", () => {
  test("a worker serving only a never claims b's jobs, while a worker serving b runs them", async ({ database: { db } }) => {
    const a = stamped("a", "worker A");
    const b = stamped("b", "worker B");
    const workerA = createWorker({ db, pipelines: [a.pipeline], config: testConfig({ concurrency: 4 }) });
    const workerB = createWorker({ db, pipelines: [b.pipeline], config: testConfig({ concurrency: 4 }) });
    expect(workerA.useCases).toEqual(["a"]);

    // Only b's jobs wait: worker A finds nothing to claim and leaves them untouched.
    const bJobs = await Promise.all(Array.from({ length: 6 }, () => submit(db, { use_case: "b" })));
    expect(await workerA.runOnce()).toBe(0);
    expect((await jobsById(db, bJobs.map((j) => j.job_id))).map((j) => j.status)).toEqual(Array(6).fill("pending"));

    // Both running, over a mix: each job is run by the worker serving its use_case, and ends done.
    const aJobs = await Promise.all(Array.from({ length: 6 }, () => submit(db, { use_case: "a" })));
    await workerA.start();
    await workerB.start();
    try {
      bJobs.push(...(await Promise.all(Array.from({ length: 6 }, () => submit(db, { use_case: "b" })))));
      const ids = [...aJobs, ...bJobs].map((j) => j.job_id);
      await waitFor("every job done", async () => (await jobsById(db, ids)).every((j) => j.status === "done"));
      for (const job of await jobsById(db, aJobs.map((j) => j.job_id))) expect(job.response?.result).toEqual({ by: "worker A" });
      for (const job of await jobsById(db, bJobs.map((j) => j.job_id))) expect(job.response?.result).toEqual({ by: "worker B" });
      expect(a.ran).toHaveLength(6);
      expect(b.ran).toHaveLength(12);
    } finally {
      await Promise.all([workerA.stop(), workerB.stop()]);
    }
  });

  test("IX_WORKER_USE_CASES narrows a worker to some of its pipelines: the others' jobs stay pending", async ({ database: { db } }) => {
    const a = stamped("a", "narrowed");
    const b = stamped("b", "narrowed");
    const worker = createWorker({ db, pipelines: [a.pipeline, b.pipeline], config: testConfig({ concurrency: 8, useCases: ["a"] }) });
    expect(worker.useCases).toEqual(["a"]);
    const aJobs = await Promise.all(Array.from({ length: 3 }, () => submit(db, { use_case: "a" })));
    const bJobs = await Promise.all(Array.from({ length: 3 }, () => submit(db, { use_case: "b" })));
    expect(await worker.runOnce()).toBe(3);
    expect((await jobsById(db, aJobs.map((j) => j.job_id))).map((j) => j.status)).toEqual(["done", "done", "done"]);
    expect((await jobsById(db, bJobs.map((j) => j.job_id))).map((j) => j.status)).toEqual(["pending", "pending", "pending"]);
    expect(b.ran).toEqual([]);
    // Nothing else is claimable for it.
    expect(await worker.runOnce()).toBe(0);
  });

  test("a name without a registered pipeline stops the worker being built, naming it and the registered ones", async ({
    database: { db },
  }) => {
    const pipelines = [stamped("a", "x").pipeline, stamped("b", "x").pipeline];
    const unknown = thrown(() => createWorker({ db, pipelines, config: testConfig({ useCases: ["a", "ocr", "llm"] }) }));
    expect(unknown.problems).toEqual([
      { variable: "IX_WORKER_USE_CASES", message: 'no pipeline is registered for "ocr", "llm" (registered: a, b)' },
    ]);
    expect(unknown.message).toBe('invalid configuration:\n  IX_WORKER_USE_CASES: no pipeline is registered for "ocr", "llm" (registered: a, b)');
    expect(thrown(() => createWorker({ db, pipelines, config: testConfig({ useCases: [] }) })).problems).toEqual([
      { variable: "IX_WORKER_USE_CASES", message: "names no use_case" },
    ]);
    expect(thrown(() => createWorker({ db, pipelines, config: testConfig({ useCaseConcurrency: { a: 0 } }) })).problems).toEqual([
      { variable: "IX_USE_CASE_CONCURRENCY", message: 'the cap of "a" must be a positive whole number, got 0' },
    ]);
    // Nothing was registered by the workers that were refused.
    const { rows } = await db.execute(sql`select * from ix_workers`);
    expect(rows).toEqual([]);
  });
});

describe("the worker registry (ix_workers)", () => {
  const rowsOf = (db: Parameters<typeof jobs.get>[0]) => db.select().from(ixWorkers);

  test("start registers the worker before claiming; the lease tick refreshes last_seen_at while it holds no runs", async ({
    database: { db },
  }) => {
    const { logger, records } = capturingLogger();
    const worker = createWorker({
      db,
      pipelines: [stamped("b", "x").pipeline, stamped("a", "x").pipeline, stamped("c", "x").pipeline],
      // A tick every 0.2 s.
      config: testConfig({ concurrency: 3, leaseSeconds: 0.6, useCases: ["c", "a"] }),
      logger,
    });
    expect(worker.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await rowsOf(db)).toEqual([]);
    await worker.start();
    try {
      const [row] = await rowsOf(db);
      expect(row).toMatchObject({ id: worker.id, host: hostname(), pid: process.pid, useCases: ["a", "c"], concurrency: 3 });
      // Operators find the row from the start-up line.
      expect(records.find((r) => r.msg === "worker starting")).toMatchObject({ workerId: worker.id, useCases: ["a", "c"] });

      const first = row!.lastSeenAt.getTime();
      const seen = await waitFor("last_seen_at to advance with a tick", async () => {
        const [now] = await rowsOf(db);
        return now && now.lastSeenAt.getTime() > first ? now : undefined;
      });
      expect(seen.startedAt).toEqual(row!.startedAt);
      expect(worker.inFlight).toBe(0);
    } finally {
      await worker.stop();
    }
    expect(await rowsOf(db)).toHaveLength(1);
  });

  test("a refresh stuck behind a lock never holds back the lease renewals of the worker's runs", async ({ database: { db } }) => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = definePipeline({
      name: "held",
      run: async () => {
        await gate;
        return { ok: true };
      },
    });
    const worker = createWorker({ db, pipelines: [held], config: testConfig({ leaseSeconds: 0.6 }) });
    await worker.start();
    const locker = await db.$client.connect();
    try {
      const job = await submit(db, { use_case: "held" });
      await waitFor("the job to run", async () => (await jobs.get(db, job.job_id))?.status === "running");
      // Every refresh now waits on this lock.
      await locker.query("begin");
      await locker.query("lock table ix_workers in access exclusive mode");
      const leaseOf = async () => (await db.execute<{ lease: string }>(sql`select lease_expires_at::text as lease from ix_jobs`)).rows[0]!.lease;
      // Renewed every 0.2 s: three renewals in a row while the refresh stays stuck.
      let lease = await leaseOf();
      for (let renewal = 1; renewal <= 3; renewal++) {
        const before = lease;
        lease = await waitFor(
          `renewal ${renewal}`,
          async () => {
            const now = await leaseOf();
            return now !== before ? now : undefined;
          },
          { timeoutMs: 2_000 },
        );
      }
      const stuck = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%ix_workers%'`,
      );
      expect(stuck.rows).toEqual([{ n: 1 }]);
      await locker.query("rollback");
      release();
      await waitFor("the job to be done", async () => (await jobs.get(db, job.job_id))?.status === "done");
      // Its run was never taken back.
      expect((await jobs.get(db, job.job_id))?.attempts).toBe(0);
    } finally {
      release();
      await locker.query("rollback").catch(() => {});
      locker.release();
      await worker.stop();
    }
  });

  test("a failed refresh is logged and tried again next tick; the worker keeps running jobs meanwhile", async ({ database: { db } }) => {
    const { logger, records } = capturingLogger();
    const a = stamped("a", "x");
    const worker = createWorker({ db, pipelines: [a.pipeline], config: testConfig({ leaseSeconds: 0.6 }), logger });
    await worker.start();
    try {
      // The registry is unreachable for a while (as if its table had gone away).
      await db.execute(sql`alter table ix_workers rename to ix_workers_away`);
      await waitFor("a failed refresh to be logged", () =>
        records.some((r) => r.msg === "refreshing the worker's registration failed" && r.level === 50),
      );
      const job = await submit(db, { use_case: "a" });
      await waitFor("the job to be done", async () => (await jobs.get(db, job.job_id))?.status === "done");

      await db.execute(sql`alter table ix_workers_away rename to ix_workers`);
      const before = (await rowsOf(db))[0]!.lastSeenAt.getTime();
      await waitFor("the row to be refreshed again", async () => (await rowsOf(db))[0]!.lastSeenAt.getTime() > before);
      expect((await rowsOf(db)).map((r) => r.id)).toEqual([worker.id]);
    } finally {
      await worker.stop();
    }
  });
});
