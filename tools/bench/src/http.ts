import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { RequestIX } from "@ix/contracts";
import { connect, migrateUp, sql } from "@ix/store";
import { freePort } from "@ix/provision";
import autocannon from "autocannon";
import { waitFor } from "@ix/testing/wait";
import { registerTestWorker } from "@ix/testing/workers";

export interface HttpResult {
  system: string;
  route: string;
  requests_per_s: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  errors: number;
  non_2xx: number;
  /** POST /jobs/batch: jobs stored per second (requests × submissions per request). */
  jobs_per_s?: number;
}

/** Submissions per `POST /jobs/batch` request in the HTTP phase: the most one batch may carry. */
export const BATCH_SIZE = 1_000;

export interface PgbenchResult {
  system: "pgbench";
  script: string;
  inserts_per_s: number;
  latency_avg_ms: number;
}

function request(requestId: string): RequestIX {
  return { use_case: "bench_noop", ix_client_id: "bench", request_id: requestId, context: { texts: ["bench"] }, options: {} };
}

/** Starts `ix api` on its own process over `url`, waits until /healthz answers. */
async function startApiProcess(url: string, poolSize: number): Promise<{ base: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", fileURLToPath(new URL("./api-process.ts", import.meta.url))], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: {
      IX_POSTGRES_URL: url,
      IX_API_HOST: "127.0.0.1",
      IX_API_PORT: String(port),
      IX_API_DB_POOL_SIZE: String(poolSize),
      IX_LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`the API process exited early (code ${code})`))),
  );
  const base = `http://127.0.0.1:${port}`;
  await Promise.race([
    exited,
    waitFor("the API to answer /healthz", async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok === true, {
      intervalMs: 50,
      timeoutMs: 30_000,
    }),
  ]);
  exited.catch(() => undefined);
  return { base, child };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await gone;
}

function summary(route: string, result: autocannon.Result): HttpResult {
  return {
    system: "ix-http",
    route,
    // autocannon's `duration` is whole seconds: a run of 64 batches came out as 4, 5 or 6 s, 25 % steps.
    requests_per_s: result.requests.total / ((result.finish.getTime() - result.start.getTime()) / 1000),
    latency_p50_ms: result.latency.p50,
    latency_p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non_2xx: result.non2xx,
  };
}

/**
 * The REST API under load (BENCHMARKS.md, Method: HTTP): autocannon with c connections
 * against `POST /jobs`, every request a new job (a unique request_id), then
 * against `GET /jobs/{id}` over the jobs just created, then against
 * `POST /jobs/batch` with BATCH_SIZE new submissions per request (c × seconds requests).
 */
export async function measureHttp(url: string, { c, seconds }: { c: number; seconds: number }): Promise<HttpResult[]> {
  const db = connect(url, { max: 1, applicationName: "ix-bench-http" });
  try {
    await migrateUp(db);
    // The API accepts only use_cases a registered worker serves. No worker runs here (this measures the
    // API alone), so the harness registers one for bench_noop, as a starting worker would.
    await registerTestWorker(db, ["bench_noop"], { host: "ix-bench" });
    const { base, child } = await startApiProcess(url, c + 2);
    try {
      let submitted = 0;
      const post = await autocannon({
        url: base,
        connections: c,
        duration: seconds,
        requests: [
          {
            method: "POST",
            path: "/jobs",
            headers: { "content-type": "application/json" },
            setupRequest: (req) => ({ ...req, body: JSON.stringify(request(`h${submitted++}`)) }),
          },
        ],
      });
      const { rows } = await db.execute<{ job_id: string }>(sql`select job_id from ix_jobs limit 10000`);
      const ids = rows.map((r) => r.job_id);
      if (ids.length === 0) throw new Error("POST /jobs stored no job: nothing to GET");
      let read = 0;
      const get = await autocannon({
        url: base,
        connections: c,
        duration: seconds,
        requests: [{ method: "GET", setupRequest: (req) => ({ ...req, path: `/jobs/${ids[read++ % ids.length]}` }) }],
      });
      let batches = 0;
      // A fixed number of batches (c per second of the run) rather than a duration: every batch sent is
      // answered and counted, even at smoke size, where one batch can take longer than the whole duration.
      const batch = await autocannon({
        url: base,
        connections: c,
        amount: c * seconds,
        // A batch's insert takes longer than autocannon's default 10 s timeout allows on a loaded machine.
        timeout: 60,
        requests: [
          {
            method: "POST",
            path: "/jobs/batch",
            headers: { "content-type": "application/json" },
            setupRequest: (req) => {
              const n = batches++;
              return { ...req, body: JSON.stringify({ jobs: Array.from({ length: BATCH_SIZE }, (_, i) => request(`b${n}-${i}`)) }) };
            },
          },
        ],
      });
      const batchSummary = summary("POST /jobs/batch", batch);
      return [
        summary("POST /jobs", post),
        summary("GET /jobs/{id}", get),
        { ...batchSummary, jobs_per_s: batchSummary.requests_per_s * BATCH_SIZE },
      ];
    } finally {
      await stopProcess(child);
    }
  } finally {
    await db.close();
  }
}

/**
 * The physical reference: pgbench's rate of single-row, autocommitted inserts
 * into a table with a jsonb column, c clients, on the same server. An HTTP
 * submit is at least this insert plus a NOTIFY, so this bounds it.
 */
export async function measurePgbench(url: string, pgbenchPath: string, { c, seconds }: { c: number; seconds: number }): Promise<PgbenchResult> {
  const db = connect(url, { max: 1, applicationName: "ix-bench-pgbench" });
  const dir = await mkdtemp(join(tmpdir(), "ix-bench-pgbench-"));
  try {
    await db.execute(sql`create table pgbench_insert (id bigint generated always as identity primary key, payload jsonb not null)`);
    const script = `insert into pgbench_insert (payload) values ('{"use_case":"bench_noop","request_id":"x"}');`;
    const file = join(dir, "insert.sql");
    await writeFile(file, `${script}\n`);
    const { stdout } = await promisify(execFile)(pgbenchPath, ["-n", "-c", String(c), "-j", String(Math.min(c, 2)), "-T", String(seconds), "-f", file, url]);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
    const latency = /latency average = ([\d.]+) ms/.exec(stdout);
    if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
    return { system: "pgbench", script, inserts_per_s: Number(tps[1]), latency_avg_ms: Number(latency?.[1] ?? Number.NaN) };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await db.close();
  }
}
