import { measureCpu } from "../cpu.ts";
import { pg } from "@ix/store";
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from "graphile-worker";
import { concurrentLoops, perSecond, runCounter } from "../stats.ts";
import { waitFor } from "@ix/testing/wait";
import { Arrivals, type QueueSystem, within } from "./system.ts";

const TASK = "bench_noop";

/** Errors only: the bench's output is its JSON lines. */
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
});

/**
 * graphile-worker in its throughput configuration (its docs' "performance"
 * page): a local queue of 500 jobs fetched and locked per round trip, and
 * completions batched (`completeJobBatchDelay: 0`). It wakes on its own
 * LISTEN/NOTIFY. Jobs are added with `addJob` (its `add_job` SQL function).
 */
export async function openGraphileWorker(url: string): Promise<QueueSystem> {
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString: url, logger: quietLogger, maxPoolSize: 20 });
  await utils.migrate();
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  let phase = 0;

  async function queued(): Promise<number> {
    const { rows } = await admin.query<{ n: string }>("select count(*) as n from graphile_worker._private_jobs");
    return Number(rows[0]?.n ?? 0);
  }

  async function clear(): Promise<void> {
    await admin.query("truncate graphile_worker._private_jobs cascade");
    await admin.query("vacuum analyze graphile_worker._private_jobs");
  }

  async function withRunner<T>(c: number, onRun: (key: string) => void, body: (start: () => Promise<Runner>) => Promise<T>): Promise<T> {
    let runner: Runner | null = null;
    try {
      return await body(async () => {
        runner = await run({
          connectionString: url,
          concurrency: c,
          noHandleSignals: true,
          logger: quietLogger,
          taskList: { [TASK]: async (payload) => onRun((payload as { key: string }).key) },
          preset: {
            worker: {
              connectionString: url,
              concurrentJobs: c,
              maxPoolSize: c + 4,
              localQueue: { size: 500 },
              completeJobBatchDelay: 0,
              failJobBatchDelay: 0,
            },
          },
        });
        return runner;
      });
    } finally {
      await (runner as Runner | null)?.stop();
    }
  }

  return {
    name: "graphile-worker",
    async enqueue({ n, c }) {
      await clear();
      const prefix = `e${phase++}-`;
      const producer = await makeWorkerUtils({ connectionString: url, logger: quietLogger, maxPoolSize: c });
      try {
        await producer.withPgClient((client) => client.query("select 1"));
        const started = performance.now();
        await concurrentLoops(n, c, async (i) => void (await producer.addJob(TASK, { key: prefix + i })));
        return perSecond(n, started, performance.now());
      } finally {
        await producer.release();
      }
    },
    async process({ n, c }) {
      await clear();
      // The backlog is added in batches (addJobs, one statement each): only draining is timed.
      for (let from = 0; from < n; from += 5_000) {
        const count = Math.min(5_000, n - from);
        await utils.addJobs(Array.from({ length: count }, (_, i) => ({ identifier: TASK, payload: { key: `p${from + i}` } })));
      }
      await admin.query("analyze graphile_worker._private_jobs");
      const runs = runCounter(n);
      return withRunner(c, runs.ran, async (start) => {
        const { value, cpu } = await measureCpu(url, n, async () => {
          const started = performance.now();
          await start();
          await within(runs.done, 600_000, `graphile-worker running all ${n} jobs`);
          // A completed job is deleted: the clock stops when the table is empty.
          await waitFor(`graphile-worker completing all ${n} jobs`, async () => (await queued()) === 0, { intervalMs: 2, timeoutMs: 300_000 });
          return perSecond(n, started, performance.now());
        });
        return { jobsPerSecond: value, ...cpu };
      });
    },
    async latency({ l, c }) {
      await clear();
      const arrivals = new Arrivals();
      const producer = await makeWorkerUtils({ connectionString: url, logger: quietLogger, maxPoolSize: 1 });
      try {
        return await withRunner(c, (key) => arrivals.arrive(key), async (start) => {
          await start();
          await producer.withPgClient((client) => client.query("select 1"));
          const samples: number[] = [];
          for (let i = 0; i < l; i++) {
            const key = `l${i}`;
            const sent = performance.now();
            await producer.addJob(TASK, { key });
            samples.push((await within(arrivals.next(key), 30_000, `graphile-worker starting job ${key}`)) - sent);
          }
          return samples;
        });
      } finally {
        await producer.release();
      }
    },
    async close() {
      await admin.end();
      await utils.release();
    },
  };
}
