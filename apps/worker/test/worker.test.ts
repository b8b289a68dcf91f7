import type { Job } from "@ix/contracts";
import { callbackState, test } from "@ix/testing";
import { jobs, sql } from "@ix/store";
import { Webhook } from "standardwebhooks";
import { describe, expect } from "vitest";
import { builtinPipelines, createWorker, definePipeline, type Pipeline } from "../src";
import { capturingLogger, startReceiver, submit, testConfig, waitFor } from "./fixtures";

const SECRET = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
const secretKey = Buffer.alloc(32, 1);

/** A pipeline that waits until released, to hold jobs in flight. */
function gated(name = "gated") {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let running = 0;
  let peak = 0;
  const pipeline = definePipeline({
    name,
    run: async () => {
      running++;
      peak = Math.max(peak, running);
      await gate;
      running--;
      return { ok: true };
    },
  });
  return { pipeline, open: () => open(), get running() { return running; }, get peak() { return peak; } };
}

async function statusOf(db: Parameters<typeof jobs.get>[0], jobId: string): Promise<Job> {
  const job = await jobs.get(db, jobId);
  if (!job) throw new Error(`job ${jobId} vanished`);
  return job;
}

describe("one job, step by step", () => {
  test("claim → extract_fields → done → signed callback delivered and verified", async ({ database: { db } }) => {
    const receiver = await startReceiver();
    try {
      const worker = createWorker({
        db,
        pipelines: builtinPipelines(),
        config: testConfig({ callback: { secret: secretKey } }),
      });
      const job = await submit(db, {}, receiver.url);
      expect(await worker.runOnce()).toBe(1);
      const done = await statusOf(db, job.job_id);
      expect(done.status).toBe("done");
      expect(done.response).toMatchObject({
        error: null,
        result: { fields: { total: [{ value: "10.00", text_index: 0, start: 18, end: 23 }] } },
        metadata: { pipeline: "extract_fields", attempt: 1 },
      });
      expect(done.response?.metadata.duration_ms).toBeGreaterThanOrEqual(0);

      expect(await worker.deliverDueOnce()).toBe(1);
      expect(receiver.received).toHaveLength(1);
      const [call] = receiver.received;
      if (!call) throw new Error("no callback");
      // Exactly what a receiver does: verify the raw body against the three headers.
      const verified = new Webhook(SECRET).verify(call.body, {
        "webhook-id": String(call.headers["webhook-id"]),
        "webhook-timestamp": String(call.headers["webhook-timestamp"]),
        "webhook-signature": String(call.headers["webhook-signature"]),
      });
      expect(verified).toMatchObject({ job_id: job.job_id, status: "done", response: done.response });
      expect(call.headers["webhook-id"]).toBe(job.job_id);
      expect(call.headers["content-type"]).toBe("application/json");

      const after = await statusOf(db, job.job_id);
      expect(after.callback_status).toBe("delivered");
      expect(await callbackState(db, job.job_id)).toEqual({ attempts: 1, nextAttemptAt: null, lastError: null });
      // Nothing is due any more: a second pass sends nothing.
      expect(await worker.deliverDueOnce()).toBe(0);
      expect(receiver.received).toHaveLength(1);
    } finally {
      await receiver.close();
    }
  });

  test("invalid options, a throw and a timeout end error with actionable messages; others are unaffected; an unknown use_case is not claimed", async ({
    database: { db },
  }) => {
    let ignoredSignal: AbortSignal | undefined;
    const pipelines: Pipeline[] = [
      ...builtinPipelines(),
      definePipeline({
        name: "explodes",
        run: () => {
          throw new Error("model endpoint returned 503");
        },
      }),
      definePipeline({
        name: "ignores_signal",
        run: (_req, { signal }) => {
          ignoredSignal = signal;
          return new Promise<Record<string, unknown>>(() => {});
        },
      }),
    ];
    // One run each: a timeout is retryable, and this test is about the error a last run ends with.
    const worker = createWorker({ db, pipelines, config: testConfig({ concurrency: 8, pipelineTimeoutSeconds: 0.3, maxAttempts: 1 }) });
    const unknown = await submit(db, { use_case: "no_such_pipeline" });
    const invalid = await submit(db, { options: { fields: { total: 7 } } });
    const throws = await submit(db, { use_case: "explodes" });
    const hangs = await submit(db, { use_case: "ignores_signal" });
    const fine = await submit(db);
    expect(await worker.runOnce()).toBe(4);

    const error = async (job: Job) => {
      const stored = await statusOf(db, job.job_id);
      expect(stored.status).toBe("error");
      expect(stored.response?.result).toBeNull();
      expect(stored.response?.metadata.attempt).toBe(1);
      return stored.response?.error;
    };
    // Left for a worker that has its pipeline (test/routing.test.ts).
    expect(await statusOf(db, unknown.job_id)).toMatchObject({ status: "pending", attempts: 0, response: null });
    expect(await error(invalid)).toMatch(/^invalid options for pipeline "extract_fields": options\.fields\.total: /);
    expect(await error(throws)).toBe('pipeline "explodes" failed: model endpoint returned 503');
    expect(await error(hangs)).toBe('pipeline "ignores_signal" timed out after 0.3 s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)');
    expect(ignoredSignal?.aborted).toBe(true);
    expect((await statusOf(db, fine.job_id)).status).toBe("done");
  });
});

describe("the running worker", () => {
  test("wakes on NOTIFY (the poll is an hour away) and never exceeds its concurrency", async ({ database: { db } }) => {
    const gate = gated();
    const worker = createWorker({ db, pipelines: [gate.pipeline], config: testConfig({ concurrency: 3, pollIntervalSeconds: 3600 }) });
    await worker.start();
    try {
      const submitted = await Promise.all(Array.from({ length: 10 }, () => submit(db, { use_case: "gated" })));
      await waitFor("3 jobs in flight", () => gate.running === 3);
      const counts = await db.execute<{ status: string; n: number }>(
        sql`select status, count(*)::int as n from ix_jobs group by status order by status`,
      );
      expect(counts.rows).toEqual([
        { status: "pending", n: 7 },
        { status: "running", n: 3 },
      ]);
      gate.open();
      await waitFor("all done", async () => {
        const all = await Promise.all(submitted.map((j) => statusOf(db, j.job_id)));
        return all.every((j) => j.status === "done");
      });
      expect(gate.peak).toBe(3);
    } finally {
      await worker.stop();
    }
  });

  test("survives its connections being killed: logs it, reconnects LISTEN and finishes the job in flight", async ({ database }) => {
    const applicationName = `ix-worker-kill-${process.pid}`;
    const workerDb = database.connect({ applicationName });
    const { logger, records } = capturingLogger();
    const gate = gated();
    const worker = createWorker({
      db: workerDb,
      pipelines: [gate.pipeline, ...builtinPipelines()],
      config: testConfig({ pollIntervalSeconds: 3600 }),
      logger,
    });
    const listeners = () =>
      database.db.execute<{ pid: number }>(
        sql`select pid from pg_stat_activity where application_name = ${applicationName} and query ilike 'listen%'`,
      );
    await worker.start();
    try {
      const first = (await waitFor("LISTEN session", async () => (await listeners()).rows[0])).pid;
      const inFlight = await submit(database.db, { use_case: "gated" });
      await waitFor("job running", () => gate.running === 1);

      const killed = await database.db.execute<{ n: number }>(
        sql`select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = ${applicationName}`,
      );
      expect(killed.rows[0]?.n).toBeGreaterThanOrEqual(1);
      await waitFor("the loss logged", () => records.some((r) => String(r.msg).startsWith("LISTEN connection lost")));
      const second = (await waitFor("a new LISTEN session", async () => (await listeners()).rows.find((r) => r.pid !== first)))
        .pid;
      expect(second).not.toBe(first);

      // The job in flight is stored on a fresh connection; a new job is claimed through the new LISTEN.
      gate.open();
      await waitFor("in-flight job done", async () => (await statusOf(database.db, inFlight.job_id)).status === "done");
      const after = await submit(database.db);
      await waitFor("new job done", async () => (await statusOf(database.db, after.job_id)).status === "done");
    } finally {
      await worker.stop();
    }
  });

  test("sweeps at start-up: an orphan left by a dead worker is requeued and finished", async ({ database: { db } }) => {
    const orphan = await submit(db);
    expect((await jobs.claimPending(db, { limit: 1 })).map((j) => j.job_id)).toEqual([orphan.job_id]); // a worker that then died
    await waitFor("the orphan to age past the 0.2 s horizon", async () => {
      const r = await db.execute<{ old: boolean }>(
        sql`select started_at < now() - interval '0.3 seconds' as old from ix_jobs where job_id = ${orphan.job_id}`,
      );
      return r.rows[0]?.old === true;
    });
    // The periodic sweep and the poll are an hour away: only the start-up sweep can requeue it.
    const worker = createWorker({
      db,
      pipelines: builtinPipelines(),
      config: testConfig({ pipelineTimeoutSeconds: 0.1, sweepIntervalSeconds: 3600, pollIntervalSeconds: 3600 }),
    });
    await worker.start();
    try {
      const done = await waitFor("the orphan to be finished", async () => {
        const job = await statusOf(db, orphan.job_id);
        return job.status === "done" ? job : undefined;
      });
      expect(done.attempts).toBe(1);
      expect(done.response?.metadata.attempt).toBe(2);
    } finally {
      await worker.stop();
    }
  });

  test("stop lets in-flight jobs finish within the grace period and leaves no LISTEN session behind", async ({ database }) => {
    const gate = gated();
    const applicationName = `ix-worker-stop-${process.pid}`;
    const worker = createWorker({
      db: database.connect({ applicationName }),
      pipelines: [gate.pipeline],
      config: testConfig({ pollIntervalSeconds: 3600 }),
    });
    await worker.start();
    const job = await submit(database.db, { use_case: "gated" });
    await waitFor("job running", () => gate.running === 1);
    const stopping = worker.stop({ graceSeconds: 30 });
    gate.open();
    expect(await stopping).toEqual({ abandonedJobs: 0 });
    expect((await statusOf(database.db, job.job_id)).status).toBe("done");
    // No LISTEN session is left behind.
    const listening = await database.db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_stat_activity where application_name = ${applicationName} and query ilike 'listen%' and state <> 'idle'`,
    );
    expect(listening.rows[0]?.n ?? 0).toBe(0);
  });

  test("a job still running when the grace period ends is left running for the sweeper", async ({ database: { db } }) => {
    const gate = gated();
    const worker = createWorker({ db, pipelines: [gate.pipeline], config: testConfig() });
    await worker.start();
    const job = await submit(db, { use_case: "gated" });
    await waitFor("job running", () => gate.running === 1);
    expect(await worker.stop({ graceSeconds: 0.1 })).toEqual({ abandonedJobs: 1 });
    gate.open();
    const stored = await statusOf(db, job.job_id);
    expect(stored).toMatchObject({ status: "running", response: null, attempts: 0 });
  });

  test("two workers on 500 jobs: every job runs and is stored exactly once", async ({ database }) => {
    const runs = new Map<string, number>();
    const byWorker = [0, 0];
    const counting = (index: number) =>
      definePipeline({
        name: "count",
        run: async (request) => {
          runs.set(request.request_id, (runs.get(request.request_id) ?? 0) + 1);
          byWorker[index] = (byWorker[index] ?? 0) + 1;
          await new Promise((resolve) => setImmediate(resolve));
          return {};
        },
      });
    const workers = [0, 1].map((index) =>
      createWorker({ db: database.connect(), pipelines: [counting(index)], config: testConfig({ concurrency: 8 }) }),
    );
    await Promise.all(workers.map((w) => w.start()));
    try {
      for (let i = 0; i < 500; i += 50) {
        await Promise.all(Array.from({ length: 50 }, () => submit(database.db, { use_case: "count" })));
      }
      await waitFor(
        "500 jobs done",
        async () => {
          const r = await database.db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where status = 'done'`);
          return r.rows[0]?.n === 500;
        },
        { timeoutMs: 60_000 },
      );
      expect(runs.size).toBe(500);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
      const stats = await database.db.execute<{ n: number; max_attempts: number }>(
        sql`select count(*)::int as n, max(attempts)::int as max_attempts from ix_jobs`,
      );
      expect(stats.rows[0]).toEqual({ n: 500, max_attempts: 0 });
      expect(byWorker[0]).toBeGreaterThan(0);
      expect(byWorker[1]).toBeGreaterThan(0);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });
});
