import { existsSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { type HttpResult, measureHttp, measurePgbench, type PgbenchResult } from "./http.ts";
import { type ClientClaimResult, type FairnessResult, measureClientClaims, measureFairness } from "./fair-share.ts";
import { ratioTable } from "./report.ts";
import { measureScale, type ScaleResult } from "./scale.ts";
import { openBenchServer } from "./server.ts";
import { percentile, round } from "./stats.ts";
import { openGraphileWorker } from "./systems/graphile-worker.ts";
import type { PipelineIsolation } from "@ix/worker";
import { ixJobCounts, openIx } from "./systems/ix.ts";
import { openPgBoss } from "./systems/pg-boss.ts";
import type { ProcessRun, QueueSystem, SystemResult, Workload } from "./systems/system.ts";
import type { CpuPerJob } from "./cpu.ts";

export const SYSTEMS = ["ix", "graphile-worker", "pg-boss"] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const DEFAULT_PGBENCH_PATH = "/usr/lib/postgresql/15/bin/pgbench";

/** The full-size workload BENCHMARKS.md reports; `pnpm bench`'s flags and `runBench`'s options default to it. */
export const BENCH_DEFAULTS = {
  n: 20_000,
  c: 8,
  l: 200,
  httpSeconds: 10,
  scaleRows: [0, 100_000, 1_000_000],
  fairClients: [1, 1_000],
} as const;

export interface BenchOptions {
  /** The server's maintenance database; without it an embedded PostgreSQL is started. */
  databaseUrl?: string | undefined;
  /** Jobs per enqueue and process run. */
  n?: number;
  /** Concurrent enqueue loops, worker concurrency, HTTP connections, pgbench clients. */
  c?: number;
  /** Sequential jobs in the latency run. */
  l?: number;
  /** Seconds per autocannon route and for pgbench; 0 skips both. */
  httpSeconds?: number;
  /** Terminal rows for the claim-latency runs; [] skips them. */
  scaleRows?: readonly number[];
  /**
   * Client counts for the claim-latency runs with n pending jobs spread over
   * that many clients; non-empty also runs the fairness run (client A's n/2
   * jobs, then client B's 20). [] skips both.
   */
  fairClients?: readonly number[];
  /** Which queues to run (default all three; [] skips them). */
  systems?: readonly SystemName[];
  /**
   * Where ix's pipelines run in its process phase, each run in turn (default
   * inline, as the peers run their handlers). The first is ix's process figure
   * in the comparison; every one is also reported on its own line.
   */
  ixIsolation?: readonly PipelineIsolation[];
  /** pgbench binary; null or a missing file skips the reference. */
  pgbenchPath?: string | null;
  /** Where JSON lines and the ratio table go (default stdout). */
  out?: (line: string) => void;
  /** Progress messages (default stderr). */
  log?: (message: string) => void;
}

export interface BenchResults {
  machine: { cpus: number; cpu_model: string; memory_gib: number; node: string; postgres: Record<string, string>; server: string };
  workload: Workload & { http_seconds: number; scale_rows: number[]; fair_clients: number[] };
  systems: SystemResult[];
  /** After ix's process run: how many jobs there were and how many ended done with a stored response. */
  ix_process_check: { jobs: number; done_with_response: number } | null;
  /** ix's process phase per isolation setting. */
  ix_process: IxProcessResult[];
  http: HttpResult[];
  pgbench: PgbenchResult | null;
  scale: ScaleResult[];
  scale_explain: string;
  /** Claim latency by the number of clients holding the pending jobs. */
  clients: ClientClaimResult[];
  fairness: FairnessResult | null;
  duration_s: number;
}

export interface IxProcessResult extends CpuPerJob {
  system: "ix-process";
  isolation: PipelineIsolation;
  process_jobs_per_s: number;
  /** Threads only: starting the pool and loading its modules, before the clock started. */
  thread_warmup_ms: number | null;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`bench option ${name} must be a positive integer, got ${value}`);
  return value;
}

const OPENERS: Record<SystemName, (url: string) => Promise<QueueSystem>> = {
  ix: openIx,
  "graphile-worker": openGraphileWorker,
  "pg-boss": openPgBoss,
};

/**
 * The benchmark BENCHMARKS.md describes: the same workload on each queue, each
 * on a fresh database of the same server; then ix's HTTP API, pgbench's insert
 * rate as the physical reference, and claim latency against a growing table.
 * Prints one JSON line per measurement and a ratio table; returns everything.
 * Options left out take BENCH_DEFAULTS.
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchResults> {
  const began = performance.now();
  const workload: Workload = {
    n: positiveInt("n", options.n ?? BENCH_DEFAULTS.n),
    c: positiveInt("c", options.c ?? BENCH_DEFAULTS.c),
    l: positiveInt("l", options.l ?? BENCH_DEFAULTS.l),
  };
  const httpSeconds = options.httpSeconds ?? BENCH_DEFAULTS.httpSeconds;
  if (!Number.isInteger(httpSeconds) || httpSeconds < 0) throw new RangeError(`bench option httpSeconds must be a whole number ≥ 0, got ${httpSeconds}`);
  const scaleRows = [...(options.scaleRows ?? BENCH_DEFAULTS.scaleRows)];
  for (const rows of scaleRows) {
    if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`bench option scaleRows must hold whole numbers ≥ 0, got ${rows}`);
  }
  const fairClients = [...(options.fairClients ?? BENCH_DEFAULTS.fairClients)];
  for (const clients of fairClients) positiveInt("fairClients", clients);
  const systems = [...(options.systems ?? SYSTEMS)];
  for (const name of systems) {
    if (!SYSTEMS.includes(name)) throw new RangeError(`unknown system "${name}" (known: ${SYSTEMS.join(", ")})`);
  }
  const ixIsolation = [...(options.ixIsolation ?? ["inline"])];
  if (ixIsolation.length === 0 || ixIsolation.some((i) => i !== "inline" && i !== "thread")) {
    throw new RangeError(`bench option ixIsolation must list inline and/or thread, got ${ixIsolation.join(",")}`);
  }
  const out = options.out ?? ((line: string) => console.log(line));
  const log = options.log ?? ((message: string) => console.error(`bench: ${message}`));
  const pgbenchPath = options.pgbenchPath === undefined ? DEFAULT_PGBENCH_PATH : options.pgbenchPath;

  const server = await openBenchServer({ url: options.databaseUrl, pgbenchPath: pgbenchPath && existsSync(pgbenchPath) ? pgbenchPath : null, log });
  try {
    const results: BenchResults = {
      machine: {
        cpus: availableParallelism(),
        cpu_model: cpus()[0]?.model ?? "unknown",
        memory_gib: round(totalmem() / 2 ** 30),
        node: process.version,
        postgres: server.settings,
        server: server.label,
      },
      workload: { ...workload, http_seconds: httpSeconds, scale_rows: scaleRows, fair_clients: fairClients },
      systems: [],
      ix_process_check: null,
      ix_process: [],
      http: [],
      pgbench: null,
      scale: [],
      scale_explain: "",
      clients: [],
      fairness: null,
      duration_s: 0,
    };
    log(`PostgreSQL ${server.settings.server_version} (fsync ${server.settings.fsync}) at ${server.label}; n=${workload.n} c=${workload.c} l=${workload.l}`);

    for (const name of systems) {
      const { url } = await server.freshDatabase(name);
      const system = await OPENERS[name](url);
      try {
        log(`${name}: enqueue ${workload.n} jobs from ${workload.c} loops`);
        const enqueue = await system.enqueue(workload);
        let processed: ProcessRun;
        if (name === "ix") {
          const ix = system as Awaited<ReturnType<typeof openIx>>;
          const runs: IxProcessResult[] = [];
          for (const isolation of ixIsolation) {
            log(`${name}: process ${workload.n} jobs at concurrency ${workload.c}, pipelines ${isolation}`);
            const run = await ix.processWith(workload, isolation);
            if (runs.length === 0) {
              const counts = await ixJobCounts(ix.db);
              results.ix_process_check = { jobs: counts.total, done_with_response: counts.doneWithResponse };
            }
            runs.push({
              system: "ix-process",
              isolation,
              process_jobs_per_s: round(run.jobsPerSecond),
              node_cpu_us_per_job: run.node_cpu_us_per_job,
              postgres_cpu_us_per_job: run.postgres_cpu_us_per_job,
              thread_warmup_ms: run.threadWarmUpMs === null ? null : round(run.threadWarmUpMs),
            });
          }
          results.ix_process.push(...runs);
          const [first] = runs;
          if (!first) throw new Error("no ix isolation to process with");
          processed = { jobsPerSecond: first.process_jobs_per_s, node_cpu_us_per_job: first.node_cpu_us_per_job, postgres_cpu_us_per_job: first.postgres_cpu_us_per_job };
        } else {
          log(`${name}: process ${workload.n} jobs at concurrency ${workload.c}`);
          processed = await system.process(workload);
        }
        log(`${name}: latency over ${workload.l} sequential jobs`);
        const samples = await system.latency(workload);
        const line: SystemResult = {
          system: name,
          enqueue_jobs_per_s: round(enqueue),
          process_jobs_per_s: round(processed.jobsPerSecond),
          node_cpu_us_per_job: processed.node_cpu_us_per_job,
          postgres_cpu_us_per_job: processed.postgres_cpu_us_per_job,
          latency_p50_ms: round(percentile(samples, 50)),
          latency_p99_ms: round(percentile(samples, 99)),
        };
        results.systems.push(line);
        out(JSON.stringify(line));
        if (name === "ix") for (const run of results.ix_process) out(JSON.stringify(run));
      } finally {
        await system.close();
      }
    }

    if (httpSeconds > 0) {
      log(`http: autocannon, ${workload.c} connections, ${httpSeconds} s per route`);
      const { url } = await server.freshDatabase("http");
      for (const line of await measureHttp(url, { c: workload.c, seconds: httpSeconds })) {
        const rounded = {
          ...line,
          requests_per_s: round(line.requests_per_s),
          latency_p50_ms: round(line.latency_p50_ms),
          latency_p99_ms: round(line.latency_p99_ms),
          ...(line.jobs_per_s === undefined ? {} : { jobs_per_s: round(line.jobs_per_s) }),
        };
        results.http.push(rounded);
        out(JSON.stringify(rounded));
      }
      if (server.pgbenchPath) {
        log(`pgbench: single-row inserts, ${workload.c} clients, ${httpSeconds} s`);
        const { url: pgbenchUrl } = await server.freshDatabase("pgbench");
        const line = await measurePgbench(pgbenchUrl, server.pgbenchPath, { c: workload.c, seconds: httpSeconds });
        results.pgbench = { ...line, inserts_per_s: round(line.inserts_per_s) };
        out(JSON.stringify(results.pgbench));
      } else log(`pgbench not found at ${pgbenchPath ?? "(disabled)"}; no physical reference`);
    }

    if (scaleRows.length > 0) {
      const { url } = await server.freshDatabase("scale");
      const scale = await measureScale(url, scaleRows, log);
      for (const row of scale.results) {
        const line = {
          system: "ix-scale",
          terminal_rows: row.terminal_rows,
          claim_p50_ms: round(row.claim_p50_ms),
          claim_p99_ms: round(row.claim_p99_ms),
          capped_claim_p50_ms: round(row.capped_claim_p50_ms),
          capped_claim_p99_ms: round(row.capped_claim_p99_ms),
        };
        results.scale.push(line);
        out(JSON.stringify(line));
      }
      results.scale_explain = scale.explain;
      out(`\nEXPLAIN (ANALYZE, BUFFERS) of the capped claim with ${Math.max(...scaleRows)} terminal rows:\n${scale.explain}\n`);
    }

    if (fairClients.length > 0) {
      const { url } = await server.freshDatabase("fair");
      for (const row of await measureClientClaims(url, { pending: workload.n, clients: fairClients, batch: workload.c }, log)) {
        const line: ClientClaimResult = {
          ...row,
          submit_jobs_per_s: round(row.submit_jobs_per_s),
          claim_1_p50_ms: round(row.claim_1_p50_ms),
          claim_1_p99_ms: round(row.claim_1_p99_ms),
          claim_batch_p50_ms: round(row.claim_batch_p50_ms),
          claim_batch_p99_ms: round(row.claim_batch_p99_ms),
        };
        results.clients.push(line);
        out(JSON.stringify(line));
      }
      results.fairness = await measureFairness(url, { a: Math.max(1, Math.floor(workload.n / 2)), c: workload.c }, log);
      out(JSON.stringify(results.fairness));
    }

    results.duration_s = round((performance.now() - began) / 1000);
    out(`\n${ratioTable(results)}`);
    return results;
  } finally {
    await server.close();
  }
}
