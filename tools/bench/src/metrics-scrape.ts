// What GET /metrics costs at 1M jobs (BENCHMARKS.md, "Metrics at 1M rows"):
//   IX_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx --conditions=source tools/bench/src/metrics-scrape.ts
// Creates a scratch database, fills it with tools/bench/sql/metrics-1m.sql (1M jobs, nearly all finished), and
// times each of the API's metric queries and whole scrapes through `createApiMetrics`: a process's first (nothing
// cached), the usual one (live figures read, finished counts cached), and fully cached. The database is dropped after.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createApiMetrics } from "@ix/api";
import { connect, metrics, migrateUp, sql } from "@ix/store";
import { percentile } from "./stats.ts";

const SAMPLES = Number(process.env.IX_BENCH_SAMPLES ?? 20);
const serverUrl = process.env.IX_POSTGRES_URL;
if (!serverUrl) throw new Error("set IX_POSTGRES_URL to a server where a scratch database may be created");
const name = `ix_bench_metrics_${randomBytes(4).toString("hex")}`;
const admin = connect(serverUrl, { max: 1 });
await admin.execute(sql.raw(`create database ${name}`));
const url = new URL(serverUrl);
url.pathname = `/${name}`;
const db = connect(url.href, { max: 4 });

async function time(what: string, step: () => Promise<unknown>): Promise<void> {
  await step(); // warm: plans cached, pages in memory, as for a process that has been scraped before
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const started = performance.now();
    await step();
    samples.push(performance.now() - started);
  }
  console.log(`| ${what} | ${percentile(samples, 50).toFixed(1)} | ${percentile(samples, 99).toFixed(1)} |`);
}

try {
  await migrateUp(db);
  const fill = await readFile(new URL("../sql/metrics-1m.sql", import.meta.url), "utf8");
  const started = performance.now();
  // VACUUM cannot run in the implicit transaction of a multi-statement query: it runs on its own.
  await db.execute(sql.raw(fill.replace(/^vacuum analyze ix_jobs;$/m, "")));
  await db.execute(sql`vacuum analyze ix_jobs`);
  const { rows } = await db.execute<{ n: string; size: string }>(
    sql`select count(*) as n, pg_size_pretty(pg_total_relation_size('ix_jobs')) as size from ix_jobs`,
  );
  console.log(`filled ${rows[0]?.n} jobs (${rows[0]?.size} with indexes) in ${((performance.now() - started) / 1000).toFixed(0)} s; ${SAMPLES} samples each\n`);
  console.log("| what | p50 ms | p99 ms |\n| --- | ---: | ---: |");
  await time("`liveJobCounts` (pending, running: partial indexes)", () => metrics.liveJobCounts(db));
  await time("`finishedJobCounts` (done, error, cancelled: whole table)", () => metrics.finishedJobCounts(db));
  await time("`callbackBacklog`", () => metrics.callbackBacklog(db));
  await time("`workersByUseCase`", () => metrics.workersByUseCase(db, { liveSeconds: 60, withinDays: 7 }));
  // A process's first scrape: nothing cached, so it waits for every query (later ones never wait for the finished counts).
  await time("first scrape of a process (nothing cached)", () =>
    createApiMetrics({ db, cacheSeconds: 0, finishedCacheSeconds: 0, workerRegistryDays: 7 }).scrape(),
  );
  const liveOnly = createApiMetrics({ db, cacheSeconds: 0, finishedCacheSeconds: 3_600, workerRegistryDays: 7 });
  await time("scrape, finished counts cached (the usual scrape)", () => liveOnly.scrape());
  const cached = createApiMetrics({ db, cacheSeconds: 3_600, finishedCacheSeconds: 3_600, workerRegistryDays: 7 });
  await time("scrape, all cached (no query)", () => cached.scrape());
} finally {
  await db.close();
  await admin.execute(sql.raw(`drop database ${name}`));
  await admin.close();
}
