// Job control on the worker side: retries (RetryableError, timeouts, the
// pipeline's policy), leases kept and lost, and cancels of running and queued jobs.
import { fileURLToPath } from "node:url";
import type { Job } from "@ix/contracts";
import { type Database, jobs, sql } from "@ix/store";
import { test } from "@ix/testing";
import { describe, expect } from "vitest";
import { type AnyPipeline, createWorker, definePipeline, loadPipelineModules, RetryableError, type Worker, type WorkerConfigOverrides } from "../src/index.ts";
import { capturingLogger, startReceiver, submit, testConfig, waitFor } from "./fixtures/index.ts";

const probes = fileURLToPath(new URL("./fixtures/pipelines/thread-probes.ts", import.meta.url));

async function current(db: Database, jobId: string): Promise<Job> {
  const job = await jobs.get(db, jobId);
  if (!job) throw new Error(`job ${jobId} vanished`);
  return job;
}

async function ended(db: Database, jobId: string, what = "end"): Promise<Job> {
  return waitFor(`job ${jobId} to ${what}`, async () => {
    const job = await current(db, jobId);
    return job.status === "done" || job.status === "error" || job.status === "cancelled" ? job : undefined;
  });
}

async function withStarted<T>(worker: Worker, body: () => Promise<T>): Promise<T> {
  await worker.start();
  try {
    return await body();
  } finally {
    await worker.stop({ graceSeconds: 5 });
  }
}

/** A pipeline that fails retryably its first `failures` runs, then succeeds. */
function flaky(failures: number, retry: AnyPipeline["retry"], error: (run: number) => Error = (run) => new RetryableError(`provider busy (run ${run})`)) {
  let runs = 0;
  const pipeline = definePipeline({
    name: "flaky",
    retry,
    run: () => {
      runs++;
      if (runs <= failures) throw error(runs);
      return { runs };
    },
  });
  return { pipeline, get runs() { return runs; } };
}

function worker(db: Database, pipelines: AnyPipeline[], overrides: WorkerConfigOverrides = {}) {
  const { logger, records } = capturingLogger();
  return { worker: createWorker({ db, pipelines, config: testConfig(overrides), logger }), records };
}

describe("retries", () => {
  test("a pipeline failing retryably twice then succeeding ends done with attempts = 2, two errors and one callback", async ({ database: { db } }) => {
    const receiver = await startReceiver();
    try {
      const f = flaky(2, { maxAttempts: 3, baseSeconds: 0.01, maxSeconds: 0.05 });
      const { worker: w } = worker(db, [f.pipeline]);
      const job = await submit(db, { use_case: "flaky" }, receiver.url);
      await withStarted(w, async () => {
        const done = await ended(db, job.job_id);
        expect(done.status).toBe("done");
        expect(done.attempts).toBe(2);
        expect(done.errors.map((e) => [e.attempt, e.error])).toEqual([
          [1, 'pipeline "flaky" failed: provider busy (run 1)'],
          [2, 'pipeline "flaky" failed: provider busy (run 2)'],
        ]);
        expect(done.response?.metadata.attempt).toBe(3);
        await waitFor("the callback", () => (receiver.received.length > 0 ? true : undefined));
      });
      expect(f.runs).toBe(3);
      // Retried runs send nothing: the one callback is the final run's.
      expect(receiver.received).toHaveLength(1);
      expect(JSON.parse(receiver.received[0]?.body ?? "{}")).toMatchObject({ status: "done" });
    } finally {
      await receiver.close();
    }
  });

  test("the last retryable failure ends error, with every run in errors and its callback sent", async ({ database: { db } }) => {
    const receiver = await startReceiver();
    try {
      const f = flaky(10, { maxAttempts: 2, baseSeconds: 0.01, maxSeconds: 0.05 });
      const { worker: w } = worker(db, [f.pipeline]);
      const job = await submit(db, { use_case: "flaky" }, receiver.url);
      await withStarted(w, async () => {
        const failed = await ended(db, job.job_id);
        expect(failed.status).toBe("error");
        expect(failed.response?.error).toBe('pipeline "flaky" failed: provider busy (run 2)');
        expect(failed.errors.map((e) => e.attempt)).toEqual([1, 2]);
        await waitFor("the callback", () => (receiver.received.length > 0 ? true : undefined));
      });
      expect(f.runs).toBe(2);
      expect(receiver.received).toHaveLength(1);
      expect(JSON.parse(receiver.received[0]?.body ?? "{}")).toMatchObject({ status: "error" });
    } finally {
      await receiver.close();
    }
  });

  test("a plain throw ends error at once, with runs left", async ({ database: { db } }) => {
    const f = flaky(1, { maxAttempts: 5 }, (run) => new Error(`bad input (run ${run})`));
    const { worker: w } = worker(db, [f.pipeline]);
    const job = await submit(db, { use_case: "flaky" });
    expect(await w.runOnce()).toBe(1);
    const failed = await current(db, job.job_id);
    expect(failed.status).toBe("error");
    expect(failed.attempts).toBe(0);
    expect(f.runs).toBe(1);
  });

  test("without a policy, IX_MAX_ATTEMPTS bounds the runs and IX_RETRY_* the backoff", async ({ database: { db } }) => {
    const f = flaky(10, undefined);
    const { worker: w } = worker(db, [f.pipeline], { maxAttempts: 2, retryBaseSeconds: 0.01, retryMaxSeconds: 0.02 });
    const job = await submit(db, { use_case: "flaky" });
    await withStarted(w, async () => {
      expect((await ended(db, job.job_id)).status).toBe("error");
    });
    expect(f.runs).toBe(2);
  });

  test("a RetryableError thrown in a pipeline thread crosses to the worker with its retryAfterSeconds", async ({ database: { db } }) => {
    const w = createWorker({ db, pipelines: await loadPipelineModules([probes]), config: testConfig({ isolation: "thread", retryMaxSeconds: 600 }) });
    try {
      const job = await submit(db, { use_case: "flaky", options: { key: "thread-retry-after", failures: 1, retryAfterSeconds: 120 } });
      const before = Date.now();
      expect(await w.runOnce()).toBe(1);
      const retried = await current(db, job.job_id);
      expect(retried.status).toBe("pending");
      expect(retried.attempts).toBe(1);
      expect(retried.errors).toHaveLength(1);
      expect(retried.errors[0]?.error).toContain("provider busy (run 1)");
      // Honoured: due no sooner than the 120 s asked for (the default backoff would be at most 5 s).
      expect(new Date(retried.run_at).getTime()).toBeGreaterThanOrEqual(before + 119_000);
    } finally {
      await w.stop({ graceSeconds: 5 });
    }
  });

  test("a timeout is retryable", async ({ database: { db } }) => {
    let runs = 0;
    const slow = definePipeline({
      name: "slow",
      retry: { maxAttempts: 2, baseSeconds: 0.01, maxSeconds: 0.02 },
      run: async (_request, { signal }) => {
        runs++;
        if (runs === 1) await new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
        return { runs };
      },
    });
    const { worker: w } = worker(db, [slow], { pipelineTimeoutSeconds: 0.2 });
    const job = await submit(db, { use_case: "slow" });
    await withStarted(w, async () => {
      const done = await ended(db, job.job_id);
      expect(done.status).toBe("done");
      expect(done.errors[0]?.error).toContain("timed out");
    });
  });

  test("a pipeline's retry policy is validated with the rest of its shape", () => {
    expect(() => createWorker({ db: null as never, pipelines: [{ name: "bad", run: () => ({}), retry: { maxAttempts: 0 } }], config: testConfig() })).toThrow(
      /retry\.maxAttempts/,
    );
    expect(() =>
      createWorker({ db: null as never, pipelines: [{ name: "bad", run: () => ({}), retry: { baseSeconds: 10, maxSeconds: 1 } }], config: testConfig() }),
    ).toThrow(/baseSeconds must not exceed maxSeconds/);
  });
});

describe("leases", () => {
  test("the lease keeper keeps a long run alive past IX_LEASE_SECONDS while a rescuer sweeps", async ({ database: { db } }) => {
    let release: () => void = () => {};
    let runs = 0;
    const long = definePipeline({
      name: "long",
      run: async () => {
        runs++;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return { ok: true };
      },
    });
    const { worker: w } = worker(db, [long], { leaseSeconds: 0.6, sweepIntervalSeconds: 0.1 });
    const job = await submit(db, { use_case: "long" });
    await withStarted(w, async () => {
      const claimed = await waitFor("the claim", async () => ((await current(db, job.job_id)).status === "running" ? Date.now() : undefined));
      // Three leases' time, with the rescuer sweeping every 0.1 s: only renewals keep the run this worker's.
      await waitFor("three leases to pass", () => (Date.now() > claimed + 1800 ? true : undefined), { timeoutMs: 10_000 });
      const held = await current(db, job.job_id);
      expect(held.status).toBe("running");
      expect(held.attempts).toBe(0);
      release();
      const done = await ended(db, job.job_id);
      expect(done.status).toBe("done");
      expect(done.attempts).toBe(0);
    });
    expect(runs).toBe(1);
  });

  test("a run whose job was rescued from under it is aborted at the next renewal, and its result dropped", async ({ database: { db } }) => {
    let aborted = false;
    const obey = definePipeline({
      name: "obey",
      run: (_request, { signal }) =>
        new Promise<Record<string, unknown>>((_resolve, reject) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(signal.reason);
          }),
        ),
    });
    const { worker: w, records } = worker(db, [obey]);
    const job = await submit(db, { use_case: "obey" });
    const run = w.runOnce();
    await waitFor("the run", () => (w.runningPipelines === 1 ? true : undefined));
    // As if this worker had frozen past its lease: the rescuer takes the job back.
    await db.execute(sql`update ix_jobs set lease_expires_at = now() - interval '1 second' where job_id = ${job.job_id}`);
    const rescued = await w.sweepOnce();
    expect(rescued.requeued).toEqual([job.job_id]);
    const renewal = await w.renewLeasesOnce();
    expect(renewal.lost).toEqual([job.job_id]);
    await run;
    expect(aborted).toBe(true);
    const after = await current(db, job.job_id);
    expect(after.status).toBe("pending");
    expect(after.attempts).toBe(1);
    expect(records.some((r) => String(r.msg).includes("lease was lost"))).toBe(true);
  });
});

describe("cancels", () => {
  test("cancel of a running CPU-bound pipeline in a thread: cancelled within IX_CANCEL_GRACE_SECONDS + 1 s, its thread replaced, its callback sent", async ({
    database: { db },
  }) => {
    const receiver = await startReceiver();
    const { logger, records } = capturingLogger();
    const w = createWorker({
      db,
      pipelines: await loadPipelineModules([probes]),
      config: testConfig({ isolation: "thread", concurrency: 1, cancelGraceSeconds: 1, pipelineTimeoutSeconds: 600 }),
      logger,
    });
    try {
      await withStarted(w, async () => {
        const spin = await submit(db, { use_case: "spin" }, receiver.url);
        await waitFor("the spin to run", () => (w.runningPipelines === 1 ? true : undefined));
        const asked = Date.now();
        expect((await jobs.cancel(db, { jobId: spin.job_id, by: "client" })).outcome).toBe("requested");
        const cancelled = await ended(db, spin.job_id, "be cancelled");
        const tookMs = Date.now() - asked;
        expect(cancelled.status).toBe("cancelled");
        // The bound the issue asks for, generous on a shared 2-core machine: grace (1 s) + 1 s.
        expect(tookMs).toBeLessThan(2_000);
        expect(records.some((r) => r.job_id === spin.job_id && String(r.msg).includes("its thread is terminated"))).toBe(true);
        // The slot serves the next job on a new thread.
        const next = await ended(db, (await submit(db, { use_case: "where" })).job_id);
        expect(next.status).toBe("done");
        await waitFor("the callback", () => (receiver.received.length > 0 ? true : undefined));
        expect(JSON.parse(receiver.received[0]?.body ?? "{}")).toMatchObject({ job_id: spin.job_id, status: "cancelled" });
      });
    } finally {
      await receiver.close();
    }
  });

  test("a run that honours its signal stops at the cancel, long before the grace", async ({ database: { db } }) => {
    let aborted = false;
    const obey = definePipeline({
      name: "obey",
      run: (_request, { signal }) =>
        new Promise<Record<string, unknown>>((_resolve, reject) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(signal.reason);
          }),
        ),
    });
    const { worker: w } = worker(db, [obey], { cancelGraceSeconds: 600 });
    await withStarted(w, async () => {
      const job = await submit(db, { use_case: "obey" });
      await waitFor("the run", () => (w.runningPipelines === 1 ? true : undefined));
      await jobs.cancel(db, { jobId: job.job_id, by: "operator" });
      expect((await ended(db, job.job_id, "be cancelled")).status).toBe("cancelled");
      expect(aborted).toBe(true);
      await waitFor("the slot to free", () => (w.runningPipelines === 0 ? true : undefined));
    });
  });

  test("a cancel whose NOTIFY was lost is found by the next lease renewal", async ({ database: { db } }) => {
    const obey = definePipeline({
      name: "obey",
      run: (_request, { signal }) => new Promise<Record<string, unknown>>((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    });
    const { worker: w } = worker(db, [obey]);
    const job = await submit(db, { use_case: "obey" });
    // Not started: no LISTEN connection, so the cancel's NOTIFY reaches no one.
    const run = w.runOnce();
    await waitFor("the run", () => (w.runningPipelines === 1 ? true : undefined));
    await jobs.cancel(db, { jobId: job.job_id, by: "client" });
    const renewal = await w.renewLeasesOnce();
    expect(renewal.cancelRequested).toEqual([job.job_id]);
    await run;
    expect((await current(db, job.job_id)).status).toBe("cancelled");
  });

  test("a pending job cancelled is never started, nor one cancelled while queued in the worker's local queue", async ({ database: { db } }) => {
    const ran: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const gated = definePipeline<Record<string, unknown>>({
      name: "gated",
      run: async (request) => {
        ran.push(String(request.options.name));
        if (request.options.name === "first") await gate;
        return { ok: true };
      },
    });
    const { worker: w, records } = worker(db, [gated], { concurrency: 1, prefetch: 1 });
    const never = await submit(db, { use_case: "gated", options: { name: "never" } });
    expect((await jobs.cancel(db, { jobId: never.job_id, by: "client" })).outcome).toBe("cancelled");
    await withStarted(w, async () => {
      const first = await submit(db, { use_case: "gated", options: { name: "first" } });
      await waitFor("the first to run", () => (ran.includes("first") ? true : undefined));
      const queued = await submit(db, { use_case: "gated", options: { name: "queued" } });
      // Claimed into the local queue behind the first: running in the database, not started here.
      await waitFor("the queued job to be claimed", async () => ((await current(db, queued.job_id)).status === "running" ? true : undefined));
      expect((await jobs.cancel(db, { jobId: queued.job_id, by: "client" })).outcome).toBe("requested");
      await waitFor("the cancel's NOTIFY to reach the worker", () =>
        records.some((r) => r.job_id === queued.job_id && String(r.msg).includes("cancel requested")) ? true : undefined,
      );
      release();
      expect((await ended(db, first.job_id)).status).toBe("done");
      expect((await ended(db, queued.job_id)).status).toBe("cancelled");
    });
    expect((await current(db, never.job_id)).status).toBe("cancelled");
    expect(ran).toEqual(["first"]);
  });
});

describe("rescues", () => {
  test("one rescuer at a time: a rescue while another holds the lock is skipped", async ({ database: { db } }) => {
    const { worker: w } = worker(db, []);
    await db.transaction(async (tx) => {
      // This transaction's rescue holds the advisory lock until it commits.
      expect((await jobs.rescueOrphans(tx, { horizonSeconds: 60, maxAttempts: 3 })).skipped).toBe(false);
      expect((await w.sweepOnce()).skipped).toBe(true);
    });
    expect((await w.sweepOnce()).skipped).toBe(false);
  });

  test("an orphan's max attempts come from its pipeline's retry policy before IX_MAX_ATTEMPTS", async ({ database: { db } }) => {
    const once = definePipeline({ name: "once", retry: { maxAttempts: 1 }, run: () => ({}) });
    const { worker: w } = worker(db, [once], { maxAttempts: 5 });
    const job = await submit(db, { use_case: "once" });
    await jobs.claimPending(db, { limit: 1 });
    await db.execute(sql`update ix_jobs set lease_expires_at = now() - interval '1 second' where job_id = ${job.job_id}`);
    expect((await w.sweepOnce()).failed).toEqual([job.job_id]);
    expect((await current(db, job.job_id)).status).toBe("error");
  });
});
