import type { RequestIX } from "@ix/contracts";
import { connect, type Database, jobs, migrateUp, sql } from "@ix/store";
import { fileURLToPath } from "node:url";
import { createWorker, definePipeline, loadPipelineModules, type PipelineIsolation, workerConfig } from "@ix/worker";
import { waitFor } from "@ix/testing/wait";
import { concurrentLoops, perSecond, runCounter } from "../stats.ts";
import { measureCpu } from "../cpu.ts";
import { Arrivals, type ProcessRun, type QueueSystem, type Workload, within } from "./system.ts";

const USE_CASE = "bench_noop";
/** ix's throughput configuration: a local queue of 500 claimed jobs, as graphile-worker gets (`localQueue.size`). */
export const IX_PREFETCH = 500;
const NOOP_MODULE = fileURLToPath(new URL("../noop-pipeline.ts", import.meta.url));

function request(requestId: string): RequestIX {
  return { use_case: USE_CASE, ix_client_id: "bench", request_id: requestId, context: { texts: ["bench"] }, options: {} };
}

/** Counts of jobs by what the bench checks: terminal with a stored response, and everything. */
export async function ixJobCounts(db: Database): Promise<{ total: number; doneWithResponse: number }> {
  const result = await db.execute<{ total: string; done: string }>(sql`
    select count(*) as total, count(*) filter (where status = 'done' and response is not null) as done from ix_jobs`);
  const row = result.rows[0];
  return { total: Number(row?.total ?? 0), doneWithResponse: Number(row?.done ?? 0) };
}

export interface IxProcessRun extends ProcessRun {
  isolation: PipelineIsolation;
  /** Thread isolation: starting the pool and loading its modules, before the clock. */
  threadWarmUpMs: number | null;
}

/** No job pending or running: both checks use a partial index, so polling this does not load the server. */
async function drained(db: Database): Promise<boolean> {
  const result = await db.execute<{ drained: boolean }>(sql`
    select not exists (select 1 from ix_jobs where status = 'pending') and not exists (select 1 from ix_jobs where status = 'running') as drained`);
  return result.rows[0]?.drained === true;
}

/**
 * ix measured through its own code paths: `jobs.insertPending` (which
 * NOTIFYs) for enqueue and latency, and the real worker (`createWorker`) with
 * a no-op pipeline for processing, every response stored. `processWith`
 * runs the process phase with pipelines inline or in worker threads.
 */
export async function openIx(url: string): Promise<
  QueueSystem & {
    db: Database;
    verified(): Promise<{ total: number; doneWithResponse: number }>;
    processWith(workload: Workload, isolation: PipelineIsolation): Promise<IxProcessRun>;
  }
> {
  const db = connect(url, { max: 20, applicationName: "ix-bench" });
  await migrateUp(db);
  let phase = 0;

  async function clear(): Promise<void> {
    await db.execute(sql`truncate ix_jobs`);
    await db.execute(sql`vacuum analyze ix_jobs`);
  }

  /** Runs `body` with a started worker of concurrency c whose pipeline reports each run to `onRun`. */
  async function withWorker<T>(c: number, onRun: (requestId: string) => void, body: (start: () => Promise<void>) => Promise<T>): Promise<T> {
    const workerDb = connect(url, { max: c + 4, applicationName: "ix-bench-worker" });
    const noop = definePipeline({
      name: USE_CASE,
      run: (req) => {
        onRun(req.request_id);
        return {};
      },
    });
    const worker = createWorker({
      db: workerDb,
      pipelines: [noop],
      config: workerConfig({ concurrency: c, prefetch: IX_PREFETCH, isolation: "inline" }),
    });
    try {
      return await body(() => worker.start());
    } finally {
      await worker.stop({ graceSeconds: 10 });
      await workerDb.close();
    }
  }

  /** The process phase: n pending jobs inserted untimed, then timed from the worker's start() to the last response stored. */
  async function processWith({ n, c }: Workload, isolation: PipelineIsolation): Promise<IxProcessRun> {
    await clear();
    // The backlog is inserted in one statement: only draining is timed.
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, use_case, fair_tag, request)
      select lpad(to_hex(g), 16, '0'), 'bench', 'p' || g, ${USE_CASE}::text, g,
             jsonb_build_object('use_case', ${USE_CASE}::text, 'ix_client_id', 'bench', 'request_id', 'p' || g,
                                'ix_id', lpad(to_hex(g), 16, '0'), 'context', jsonb_build_object('texts', jsonb_build_array('bench')),
                                'options', '{}'::jsonb)
      from generate_series(1, ${n}::int) as g`);
    await db.execute(sql`analyze ix_jobs`);
    const allStored = () => waitFor(`ix storing all ${n} responses`, async () => (await ixJobCounts(db)).doneWithResponse === n, { intervalMs: 2, timeoutMs: 300_000 });
    if (isolation === "inline") {
      const runs = runCounter(n);
      return withWorker(c, runs.ran, async (start) => {
        const { value, cpu } = await measureCpu(url, n, async () => {
          const started = performance.now();
          await start();
          await within(runs.done, 600_000, `ix running all ${n} jobs`);
          // Ran is not stored: the clock stops when the last response is in the table.
          await allStored();
          return perSecond(n, started, performance.now());
        });
        return { isolation, jobsPerSecond: value, ...cpu, threadWarmUpMs: null };
      });
    }
    // Threads: the pipeline comes from a module (a closure cannot cross threads), and the
    // threads are started and loaded before the clock, as they are before a worker claims anything.
    const workerDb = connect(url, { max: c + 4, applicationName: "ix-bench-worker" });
    const worker = createWorker({
      db: workerDb,
      pipelines: await loadPipelineModules([NOOP_MODULE]),
      config: workerConfig({ concurrency: c, prefetch: IX_PREFETCH, isolation: "thread" }),
    });
    try {
      const warming = performance.now();
      await worker.warmUp();
      const threadWarmUpMs = performance.now() - warming;
      const { value, cpu } = await measureCpu(url, n, async () => {
        const started = performance.now();
        await worker.start();
        // No run counter across threads: poll for a drained queue through the partial indexes (cheap, unlike counting every 2 ms).
        await waitFor(`ix draining all ${n} jobs`, async () => await drained(db), { intervalMs: 2, timeoutMs: 300_000 });
        return perSecond(n, started, performance.now());
      });
      const counts = await ixJobCounts(db);
      if (counts.doneWithResponse !== n) throw new Error(`ix (threads) drained with ${counts.doneWithResponse} of ${n} jobs done with a response`);
      return { isolation, jobsPerSecond: value, ...cpu, threadWarmUpMs };
    } finally {
      await worker.stop({ graceSeconds: 10 });
      await workerDb.close();
    }
  }

  return {
    name: "ix",
    db,
    verified: () => ixJobCounts(db),
    async enqueue({ n, c }) {
      await clear();
      const prefix = `e${phase++}-`;
      const pool = connect(url, { max: c, applicationName: "ix-bench-enqueue" });
      try {
        await pool.execute(sql`select 1`);
        const started = performance.now();
        await concurrentLoops(n, c, async (i) => void (await jobs.insertPending(pool, { request: request(prefix + i) })));
        return perSecond(n, started, performance.now());
      } finally {
        await pool.close();
      }
    },
    async process(workload) {
      return processWith(workload, "inline");
    },
    processWith,
    async latency({ l, c }) {
      await clear();
      const arrivals = new Arrivals();
      const producer = connect(url, { max: 1, applicationName: "ix-bench-producer" });
      try {
        return await withWorker(c, (id) => arrivals.arrive(id), async (start) => {
          await start();
          await producer.execute(sql`select 1`);
          const samples: number[] = [];
          for (let i = 0; i < l; i++) {
            const id = `l${i}`;
            const sent = performance.now();
            await jobs.insertPending(producer, { request: request(id) });
            samples.push((await within(arrivals.next(id), 30_000, `ix starting job ${id}`)) - sent);
          }
          return samples;
        });
      } finally {
        await producer.close();
      }
    },
    async close() {
      await db.close();
    },
  };
}
