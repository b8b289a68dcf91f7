// Throughput across worker hosts on one PostgreSQL (BENCHMARKS.md, "Scaling across worker hosts"; issue 18 item 2):
// on the multi-host harness (@ix/faults/hosts: network namespaces, a PostgreSQL cluster of the run's own),
// one API host, a load generator host, and 1, 2, 4, 8 worker hosts in turn, each `ix worker` with the same
// IX_WORKER_CONCURRENCY. For each host count a backlog of `nap` jobs (20–200 ms of sleeping, seeded) is
// submitted through the API with a run_at an hour ahead, then released at once; the drain is timed from the
// release to the last finished_at, with the PostgreSQL cluster's CPU (/proc), its WAL bytes, the machine's CPU
// and the connections in pg_stat_activity sampled meanwhile.
//
//   npx tsx --conditions=source tools/bench/src/scaling.ts [--hosts 1,2,4,8] [--concurrency 16] [--jobs 3000]
import { readdir, readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type Cluster, startCluster } from "@ix/faults/hosts";
import type { Database } from "@ix/store";
import { sql } from "@ix/store";
import { processCpuUs } from "./cpu.ts";

const { values: flags } = parseArgs({
  options: {
    hosts: { type: "string", default: "1,2,4,8" },
    concurrency: { type: "string", default: "16" },
    jobs: { type: "string", default: "3000" },
    "ms-min": { type: "string", default: "20" },
    "ms-max": { type: "string", default: "200" },
    "submit-concurrency": { type: "string", default: "32" },
    help: { type: "boolean", default: false },
  },
});

if (flags.help) {
  console.log(`usage: npx tsx --conditions=source tools/bench/src/scaling.ts [flags]   (as root: network namespaces)
  --hosts 1,2,4,8            worker host counts, measured in turn (at most 8)
  --concurrency 16           IX_WORKER_CONCURRENCY of every worker host
  --jobs 3000                the backlog drained at each host count
  --ms-min 20 --ms-max 200   each job's sleep, seeded uniform
  --submit-concurrency 32    the load generator's requests in flight`);
  process.exit(0);
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

const HOST_COUNTS = (flags.hosts ?? "").split(",").map((h) => positiveInt("hosts", h.trim()));
if (HOST_COUNTS.some((h) => h > 8)) throw new Error("--hosts: at most 8 worker hosts (the harness's bound with the API and load hosts)");
const CONCURRENCY = positiveInt("concurrency", flags.concurrency ?? "");
const JOBS = positiveInt("jobs", flags.jobs ?? "");
const MS_MIN = positiveInt("ms-min", flags["ms-min"] ?? "");
const MS_MAX = positiveInt("ms-max", flags["ms-max"] ?? "");
if (MS_MAX < MS_MIN) throw new Error("--ms-max must be at least --ms-min");
const SUBMIT_CONCURRENCY = positiveInt("submit-concurrency", flags["submit-concurrency"] ?? "");
const MEAN_MS = (MS_MIN + MS_MAX) / 2;
const SAMPLE_MS = 250;
/** A drain that takes longer than this has stalled: the run fails rather than hang. */
const DRAIN_TIMEOUT_MS = 180_000;

/** Busy and total jiffies of the whole machine (/proc/stat's first line). */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const fields = (await readFile("/proc/stat", "utf8")).split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const total = fields.reduce((a, b) => a + b, 0);
  // idle and iowait are the 4th and 5th.
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/**
 * CPU the PostgreSQL cluster has used, in µs: the postmaster with the children it has reaped
 * (cutime/cstime, so a backend that exited still counts) plus every live child (backends, walwriter, …).
 */
async function clusterCpuUs(postmaster: number): Promise<number> {
  const stat = await readFile(`/proc/${postmaster}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime: the 12th to 15th fields after the name, in 10 ms ticks.
  let us = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 10_000;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const child = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => null);
    if (!child) continue;
    const ppid = Number(child.slice(child.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === postmaster) us += (await processCpuUs(Number(entry))) ?? 0;
  }
  return us;
}

async function processesCpuUs(pids: number[]): Promise<number> {
  const each = await Promise.all(pids.map((pid) => processCpuUs(pid)));
  return each.reduce<number>((a, b) => a + (b ?? 0), 0);
}

async function walLsn(db: Database): Promise<string> {
  const result = await db.execute<{ lsn: string }>(sql`select pg_current_wal_lsn()::text as lsn`);
  return result.rows[0]?.lsn ?? "0/0";
}

async function walBytesSince(db: Database, from: string): Promise<number> {
  const result = await db.execute<{ bytes: string }>(sql`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${from}::pg_lsn)::text as bytes`);
  return Number(result.rows[0]?.bytes ?? 0);
}

/** Client connections by application_name (the bench's own sampling connections left out). */
async function connections(db: Database): Promise<Map<string, number>> {
  const result = await db.execute<{ app: string; n: number }>(sql`
    select application_name as app, count(*)::int as n from pg_stat_activity
    where backend_type = 'client backend' and application_name <> 'ix-hosts-test' group by application_name`);
  return new Map(result.rows.map((r) => [r.app, r.n]));
}

async function doneCount(db: Database): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where status = 'done'`);
  return result.rows[0]?.n ?? 0;
}

interface Row {
  hosts: number;
  ideal_jobs_s: number;
  jobs_s: number;
  pg_cpu_cores: number;
  /** All worker processes together. */
  workers_cpu_cores: number;
  machine_cpu_cores: number;
  wal_mb_s: number;
  wal_bytes_per_job: number;
  peak_connections: number;
  peak_by_app: string;
  submit_jobs_s: number;
}

async function measure(cluster: Cluster, hosts: number): Promise<Row> {
  const { db } = cluster;
  const apiHost = cluster.network.hosts.get("api");
  const loadHost = cluster.network.hosts.get("load");
  if (!apiHost || !loadHost) throw new Error("the api and load hosts are missing");
  const api = (await cluster.startApi(apiHost, { IX_LOG_LEVEL: "warn" }));
  const phaseStart = new Date();
  const workers = [];
  for (let i = 1; i <= hosts; i++) {
    const host = cluster.network.hosts.get(`w${i}`) ?? (await cluster.addHost(`w${i}`));
    workers.push(cluster.startWorker(host, { IX_WORKER_CONCURRENCY: String(CONCURRENCY), IX_WORKER_USE_CASES: "nap", IX_LOG_LEVEL: "warn" }));
  }
  try {
    for (const began = Date.now(); ; await sleep(200)) {
      const registered = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_workers where started_at >= ${phaseStart.toISOString()}::timestamptz`);
      if ((registered.rows[0]?.n ?? 0) >= hosts) break;
      if (Date.now() - began > 60_000) throw new Error(`only ${registered.rows[0]?.n} of ${hosts} workers registered within 60 s`);
    }
    console.error(`  ${hosts} host(s): api and workers up in ${((Date.now() - phaseStart.getTime()) / 1000).toFixed(1)} s`);
    const prefix = `h${hosts}-${Date.now()}`;
    const submitted = await cluster.runLoad(loadHost, [api], {
      count: JOBS,
      prefix,
      useCase: "nap",
      msMin: MS_MIN,
      msMax: MS_MAX,
      concurrency: SUBMIT_CONCURRENCY,
      runAt: new Date(Date.now() + 3_600_000).toISOString(),
      seed: 18,
    });
    console.error(`  ${hosts} host(s): ${JOBS} jobs submitted in ${(submitted.ms / 1000).toFixed(1)} s (503 retries ${submitted.retried_503}, error retries ${submitted.retried_error})`);
    if (submitted.retried_503 > 0) {
      const reasons = new Set(api.process.lines.filter((l) => typeof l.msg === "string" && l.msg.includes("503")).map((l) => l.msg));
      console.error(`  the API's 503s: ${[...reasons].slice(0, 3).join("; ")}`);
    }
    // Settle after the submissions, so their WAL and CPU stay out of the drain's figures.
    await sleep(500);
    const doneBefore = await doneCount(db);
    const cpu0 = await clusterCpuUs(cluster.postgres.pid);
    const workersCpu0 = await processesCpuUs(workers.map((w) => w.pid));
    const machine0 = await machineTicks();
    const lsn0 = await walLsn(db);
    const released = await db.execute<{ t0: string }>(sql`
      with released as (update ix_jobs set run_at = clock_timestamp() where status = 'pending' and request->>'request_id' like ${`${prefix}-%`} returning run_at)
      select min(run_at)::text as t0 from released`);
    await db.execute(sql`select pg_notify('ix_jobs_pending', '')`);
    const t0 = released.rows[0]?.t0;
    const wall0 = performance.now();
    let peak = new Map<string, number>();
    let peakTotal = 0;
    for (;;) {
      const conns = await connections(db);
      const total = [...conns.values()].reduce((a, b) => a + b, 0);
      if (total > peakTotal) [peak, peakTotal] = [conns, total];
      const done = (await doneCount(db)) - doneBefore;
      if (done >= JOBS) break;
      if (performance.now() - wall0 > DRAIN_TIMEOUT_MS) throw new Error(`the drain of ${hosts} host(s) stalled at ${done} of ${JOBS} jobs`);
      await sleep(SAMPLE_MS);
    }
    const wallS = (performance.now() - wall0) / 1000;
    const cpuUs = (await clusterCpuUs(cluster.postgres.pid)) - cpu0;
    const workersCpuUs = (await processesCpuUs(workers.map((w) => w.pid))) - workersCpu0;
    const machine1 = await machineTicks();
    const walBytes = await walBytesSince(db, lsn0);
    const span = await db.execute<{ s: number }>(sql`
      select extract(epoch from max(finished_at) - ${t0}::timestamptz)::float8 as s from ix_jobs where request->>'request_id' like ${`${prefix}-%`}`);
    const drainS = span.rows[0]?.s ?? wallS;
    const machineShare = (machine1.busy - machine0.busy) / (machine1.total - machine0.total);
    return {
      hosts,
      ideal_jobs_s: Math.round((hosts * CONCURRENCY * 1000) / MEAN_MS),
      jobs_s: Math.round(JOBS / drainS),
      pg_cpu_cores: Number((cpuUs / 1e6 / wallS).toFixed(2)),
      workers_cpu_cores: Number((workersCpuUs / 1e6 / wallS).toFixed(2)),
      machine_cpu_cores: Number((machineShare * availableParallelism()).toFixed(2)),
      wal_mb_s: Number((walBytes / 1e6 / wallS).toFixed(2)),
      wal_bytes_per_job: Math.round(walBytes / JOBS),
      peak_connections: peakTotal,
      peak_by_app: [...peak.entries()].map(([app, n]) => `${app}=${n}`).sort().join(" "),
      submit_jobs_s: Math.round((submitted.accepted * 1000) / submitted.ms),
    };
  } finally {
    await Promise.all([...workers.map((w) => w.stop()), api.process.stop()]);
  }
}

const started = Date.now();
const cluster = await startCluster();
console.error(`  cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
// Interrupted (Ctrl-C): remove the namespaces and processes now rather than leave them to the next run's sweep.
process.once("SIGINT", () => void cluster.close().finally(() => process.exit(130)));
const rows: Row[] = [];
try {
  await cluster.addHost("api");
  await cluster.addHost("load");
  console.log(`scaling: concurrency=${CONCURRENCY} per worker host, jobs=${JOBS} per host count, nap ${MS_MIN}-${MS_MAX} ms (mean ${MEAN_MS})`);
  for (const hosts of HOST_COUNTS) {
    const row = await measure(cluster, hosts);
    rows.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  await cluster.close();
}
console.log("\n| worker hosts | ideal jobs/s | drained jobs/s | PG CPU (cores) | workers' CPU (cores) | machine CPU (of 2) | WAL MB/s | WAL bytes/job | peak connections | submitted jobs/s |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.hosts} | ${r.ideal_jobs_s} | ${r.jobs_s} | ${r.pg_cpu_cores} | ${r.workers_cpu_cores} | ${r.machine_cpu_cores} | ${r.wal_mb_s} | ${r.wal_bytes_per_job} | ${r.peak_connections} | ${r.submit_jobs_s} |`,
  );
}
for (const r of rows) console.log(`connections at peak, ${r.hosts} host(s): ${r.peak_by_app}`);
