import { measureCpu } from "../cpu.ts";
import { pg } from "@ix/store";
import { PgBoss } from "pg-boss";
import { concurrentLoops, perSecond, runCounter } from "../stats.ts";
import { waitFor } from "@ix/testing/wait";
import { Arrivals, type QueueSystem, within } from "./system.ts";

const QUEUE = "bench_noop";
/** Jobs per fetch; each of the c workers fetches and completes this many per round trip. */
export const PG_BOSS_BATCH_SIZE = 100;

/**
 * pg-boss 12 in its throughput configuration: `localConcurrency: c` workers,
 * each fetching `batchSize` jobs per statement and completing them in one,
 * `burstWhenBatchFull` (a worker whose batch came back full fetches again at
 * once instead of sleeping its polling interval), and its own LISTEN/NOTIFY
 * (`useListenNotify` with a `notify: true` queue), the same wake-up ix and
 * graphile-worker get.
 */
export async function openPgBoss(url: string): Promise<QueueSystem> {
  const boss = new PgBoss({ connectionString: url, max: 20, schedule: false, supervise: false, useListenNotify: true });
  boss.on("error", (error: Error) => console.error(`pg-boss: ${error.message}`));
  await boss.start();
  await boss.createQueue(QUEUE, { notify: true });
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  let phase = 0;

  async function completed(): Promise<number> {
    const { rows } = await admin.query<{ n: string }>("select count(*) as n from pgboss.job where name = $1 and state = 'completed'", [QUEUE]);
    return Number(rows[0]?.n ?? 0);
  }

  async function clear(): Promise<void> {
    await boss.deleteAllJobs(QUEUE);
    await admin.query("vacuum analyze pgboss.job");
  }

  async function withWorkers<T>(c: number, onRun: (key: string) => void, body: (start: () => Promise<void>) => Promise<T>): Promise<T> {
    try {
      return await body(async () => {
        await boss.work<{ key: string }>(
          QUEUE,
          { localConcurrency: c, batchSize: PG_BOSS_BATCH_SIZE, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
          async (batch) => {
            for (const job of batch) onRun(job.data.key);
          },
        );
      });
    } finally {
      await boss.offWork(QUEUE, { wait: true });
    }
  }

  return {
    name: "pg-boss",
    async enqueue({ n, c }) {
      await clear();
      const prefix = `e${phase++}-`;
      const started = performance.now();
      await concurrentLoops(n, c, async (i) => void (await boss.send(QUEUE, { key: prefix + i })));
      return perSecond(n, started, performance.now());
    },
    async process({ n, c }) {
      await clear();
      for (let from = 0; from < n; from += 5_000) {
        const count = Math.min(5_000, n - from);
        await boss.insert(QUEUE, Array.from({ length: count }, (_, i) => ({ data: { key: `p${from + i}` } })));
      }
      await admin.query("analyze pgboss.job");
      const runs = runCounter(n);
      return withWorkers(c, runs.ran, async (start) => {
        const { value, cpu } = await measureCpu(url, n, async () => {
          const started = performance.now();
          await start();
          await within(runs.done, 600_000, `pg-boss running all ${n} jobs`);
          await waitFor(`pg-boss completing all ${n} jobs`, async () => (await completed()) === n, { intervalMs: 2, timeoutMs: 300_000 });
          return perSecond(n, started, performance.now());
        });
        return { jobsPerSecond: value, ...cpu };
      });
    },
    async latency({ l, c }) {
      await clear();
      const arrivals = new Arrivals();
      return withWorkers(c, (key) => arrivals.arrive(key), async (start) => {
        await start();
        const samples: number[] = [];
        for (let i = 0; i < l; i++) {
          const key = `l${i}`;
          const sent = performance.now();
          await boss.send(QUEUE, { key });
          samples.push((await within(arrivals.next(key), 30_000, `pg-boss starting job ${key}`)) - sent);
        }
        return samples;
      });
    },
    async close() {
      await admin.end();
      await boss.stop({ graceful: false });
    },
  };
}
