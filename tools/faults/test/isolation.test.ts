import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Job, RequestIX } from "@ix/contracts";
import { type Database, jobs, sql } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { BEAT_MS, type Heartbeat } from "../src/hostile-pipelines.ts";
import { type IxProcess, killAll, resetPeakRss, spawnIx } from "../src/processes.ts";
import { waitFor } from "../src/wait.ts";

const MB = 1_048_576;
const HOSTILE_MODULE = fileURLToPath(new URL("../src/hostile-pipelines.ts", import.meta.url));

/**
 * How much slower a trivial job may be, while a hostile client's jobs run, than
 * the same job on the idle worker. Generous on purpose (2 shared cores); the
 * failures this guards against took seconds to tens of seconds.
 */
const TRIVIAL_SLOWDOWN_BOUND_MS = 1_500;
/** The worker's own event loop must keep turning: before isolation a CPU-bound pipeline stalled it for seconds. */
const LOOP_DELAY_BOUND_MS = 1_000;

const INVOICE = "Invoice 42, total 10.00 EUR";
const INVOICE_RESULT = { fields: { total: [{ value: "10.00", text_index: 0, start: 18, end: 23 }] } };

let sequence = 0;
async function submit(db: Database, client: string, request: Pick<RequestIX, "use_case" | "context" | "options">): Promise<Job> {
  const { job } = await jobs.insertPending(db, { request: { ...request, ix_client_id: client, request_id: `${client}-${++sequence}` } });
  return job;
}

const trivial = (db: Database, client: string) =>
  submit(db, client, { use_case: "extract_fields", context: { texts: [INVOICE] }, options: { fields: { total: "\\d+\\.\\d{2}" } } });

async function terminal(db: Database, job: Job, timeoutMs = 60_000): Promise<Job> {
  return waitFor(
    `job ${job.request_id} (${job.request.use_case}) to end`,
    async () => {
      const current = await jobs.get(db, job.job_id);
      return current?.status === "done" || current?.status === "error" ? current : undefined;
    },
    { timeoutMs, intervalMs: 10 },
  );
}

/** Submit to stored, by the database's clock. */
async function latencyMs(db: Database, job: Job): Promise<number> {
  const result = await db.execute<{ ms: number }>(
    sql`select (extract(epoch from finished_at - created_at) * 1000)::float8 as ms from ix_jobs where job_id = ${job.job_id}`,
  );
  return Number(result.rows[0]?.ms);
}

/** Runs a trivial job to its end, one at a time, and returns its latency. */
async function trivialRun(db: Database, client: string): Promise<{ job: Job; ms: number }> {
  const job = await terminal(db, await trivial(db, client));
  return { job, ms: await latencyMs(db, job) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const round = (value: number) => Math.round(value * 10) / 10;

/** What the worker process reported from `fromLine` on: its peak RSS (VmHWM since the reset) and worst event-loop delay. */
async function phaseFigures(worker: IxProcess, fromLine: number) {
  // One more sample after the phase, so its end is covered.
  const after = worker.lines.length;
  await worker.waitForLine("a memory sample after the phase", (line) => line.fault === "memory" && worker.lines.indexOf(line) >= after);
  const samples = worker.lines.slice(fromLine).filter((line) => line.fault === "memory");
  const peak = Math.max(...samples.map((s) => Number(s.hwmBytes ?? s.maxRssBytes)));
  const loopDelayMaxMs = Math.max(...samples.map((s) => Number(s.loopDelayMaxMs)));
  return { peakRssMb: round(peak / MB), loopDelayMaxMs: round(loopDelayMaxMs), samples: samples.length };
}

function workerEnv(url: string, extra: Record<string, string>): Record<string, string> {
  return {
    IX_POSTGRES_URL: url,
    IX_WORKER_POLL_INTERVAL_SECONDS: "0.2",
    IX_PIPELINE_MODULES: HOSTILE_MODULE,
    IX_LOG_LEVEL: "warn",
    // One run per job: these faults are about how a run ends, and a timeout is retryable (section 8).
    IX_MAX_ATTEMPTS: "1",
    ...extra,
  };
}

/**
 * Starts a worker, waits until it listens (start-up loads its first pipeline
 * thread before that), then runs one `barrier` job per slot, which can only
 * end together, so the pool has grown to a thread per slot, as on a worker
 * that has been busy.
 */
async function startWorker(db: Database, env: Record<string, string>, processes: IxProcess[]): Promise<IxProcess> {
  const worker = spawnIx("worker", env);
  processes.push(worker);
  await waitFor("the worker to listen", async () => (await listeningWorkers(db)) === 1, { timeoutMs: 60_000 });
  const concurrency = Number(env.IX_WORKER_CONCURRENCY ?? 4);
  const dir = await mkdtemp(join(tmpdir(), "ix-barrier-"));
  try {
    const options = { dir, parties: concurrency };
    const warmUp = await Promise.all(Array.from({ length: concurrency }, () => submit(db, "warm-up", { use_case: "barrier", context: { texts: ["t"] }, options })));
    const threads = new Set<unknown>();
    for (const job of warmUp) threads.add((await terminal(db, job)).response?.result?.threadId);
    expect(threads.size).toBe(concurrency);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return worker;
}

/**
 * Pipelines run in worker threads: a client's expensive patterns, huge results
 * and pipelines that ignore their signal end `error` without stalling the
 * worker's own loop, while another client's jobs are served as usual.
 */
describe("isolation: hostile pipelines cannot stall the worker or exceed its concurrency", () => {
  test("CPU-bound patterns: the backtracking job ends error at the matching budget; the other client's trivial jobs stay fast", { timeout: 120_000 }, async ({
    database: { db, url },
  }) => {
    const processes: IxProcess[] = [];
    try {
      const worker = await startWorker(db, workerEnv(url, { IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5", IX_PIPELINE_KILL_GRACE_SECONDS: "1" }), processes);
      const normal: number[] = [];
      for (let i = 0; i < 5; i++) normal.push((await trivialRun(db, "bob")).ms);
      const normalMs = median(normal);

      const phaseStart = worker.lines.length;
      const peakReset = await resetPeakRss(worker.pid);
      // The jobs: 250 fields "b" × 2,500 texts "a" (15.7 KB; 625,000 pairs, each once a vm call), twice…
      const manyPairs = {
        use_case: "extract_fields",
        context: { texts: Array.from({ length: 2_500 }, () => "a") },
        options: { fields: Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`f${i}`, "b"])) },
      };
      const pairsA = await submit(db, "mallory", manyPairs);
      const pairsB = await submit(db, "mallory", manyPairs);
      // …and `(a+)+$` on 24 a's + "b", 10 fields × 2 texts: each pair backtracks ~0.3 s, 6 s in all.
      const backtrack = await submit(db, "mallory", {
        use_case: "extract_fields",
        context: { texts: [`${"a".repeat(24)}b`, `${"a".repeat(24)}b`] },
        options: { fields: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, "(a+)+$"])) },
      });
      await waitFor("the backtracking job to be claimed", async () => (await jobs.get(db, backtrack.job_id))?.status === "running", { intervalMs: 5 });
      // The other client's trivial jobs, one after another, while the backtracking run burns a core.
      const during = [];
      for (let i = 0; i < 3; i++) during.push(await trivialRun(db, "bob"));
      const [a, b, evil] = [await terminal(db, pairsA), await terminal(db, pairsB), await terminal(db, backtrack)];
      const figures = await phaseFigures(worker, phaseStart);
      const duringMs = Math.max(...during.map((d) => d.ms));

      printFigures("isolation-cpu", {
        trivial_normal_ms: round(normalMs),
        trivial_during_hostile_max_ms: round(duringMs),
        many_pairs_duration_ms: Math.max(a.response?.metadata.duration_ms ?? 0, b.response?.metadata.duration_ms ?? 0),
        backtrack_duration_ms: evil.response?.metadata.duration_ms ?? "?",
        backtrack_status: evil.status,
        worker_loop_delay_max_ms: figures.loopDelayMaxMs,
        peak_rss_during_hostile_mb: figures.peakRssMb,
        peak_measure: peakReset ? "VmHWM" : "maxRSS",
      });

      // The backtracking job ends error at the job's matching budget, naming the field and text, not `done` after seconds.
      expect(evil.status).toBe("error");
      expect(evil.response?.error).toMatch(/^pipeline "extract_fields" failed: field "f\d": matching ran out of the job's 2000 ms budget on text [01] /);
      // The 625,000-pair jobs now cost one vm call each: they end done, every field empty.
      for (const job of [a, b]) {
        expect(job.status).toBe("done");
        const fields = (job.response?.result as { fields: Record<string, unknown[]> } | undefined)?.fields ?? {};
        expect(Object.keys(fields)).toHaveLength(250);
        expect(Object.values(fields).every((matches) => matches.length === 0)).toBe(true);
      }
      // The other client's jobs ran while the backtracking job was still running, with their results, at about normal speed.
      for (const { job } of during) {
        expect(job.status).toBe("done");
        expect(job.response?.result).toEqual(INVOICE_RESULT);
        expect(Date.parse(job.finished_at ?? "")).toBeLessThan(Date.parse(evil.finished_at ?? ""));
      }
      expect(duringMs).toBeLessThan(normalMs + TRIVIAL_SLOWDOWN_BOUND_MS);
      expect(figures.loopDelayMaxMs).toBeLessThan(LOOP_DELAY_BOUND_MS);
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
    }
  });

  test("huge results: matches per field and IX_MAX_RESULT_BYTES end the job error naming the bound; nothing large is stored", { timeout: 120_000 }, async ({
    database: { db, url },
  }) => {
    const processes: IxProcess[] = [];
    try {
      const worker = await startWorker(db, workerEnv(url, { IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5", IX_PIPELINE_KILL_GRACE_SECONDS: "1" }), processes);
      const normal: number[] = [];
      for (let i = 0; i < 5; i++) normal.push((await trivialRun(db, "bob")).ms);
      const normalMs = median(normal);

      const phaseStart = worker.lines.length;
      const peakReset = await resetPeakRss(worker.pid);
      // The job: a 1 MB text and three fields matching every character (3M matches, a 170 MB response before).
      const everyChar = await submit(db, "alice", {
        use_case: "extract_fields",
        context: { texts: ["a".repeat(MB)] },
        options: { fields: { f0: ".", f1: ".", f2: "." } },
      });
      // Within the match bounds but over IX_MAX_RESULT_BYTES: 4 fields × 10,000 matches, about 2 MB serialized.
      const overResult = await submit(db, "alice", {
        use_case: "extract_fields",
        context: { texts: ["x".repeat(10_000)] },
        options: { fields: { f0: "x", f1: "x", f2: "x", f3: "x" } },
      });
      // A module pipeline returning 20 MB.
      const bloat = await submit(db, "alice", { use_case: "bloat", context: { texts: ["t"] }, options: { bytes: 20 * MB } });
      const during = [];
      for (let i = 0; i < 3; i++) during.push(await trivialRun(db, "bob"));
      const [chars, over, big] = [await terminal(db, everyChar), await terminal(db, overResult), await terminal(db, bloat)];
      const figures = await phaseFigures(worker, phaseStart);
      const sizes = await db.execute<{ request_id: string; bytes: number }>(
        sql`select request_id, pg_column_size(response)::int as bytes from ix_jobs where client_id = 'alice' order by request_id`,
      );
      const largestStored = Math.max(...sizes.rows.map((r) => r.bytes));
      const overBytes = Number(/returned a result of (\d+) bytes/.exec(over.response?.error ?? "")?.[1]);
      const duringMs = Math.max(...during.map((d) => d.ms));

      printFigures("isolation-results", {
        trivial_normal_ms: round(normalMs),
        trivial_during_hostile_max_ms: round(duringMs),
        every_char_status: chars.status,
        over_result_bytes: overBytes,
        bloat_status: big.status,
        largest_stored_response_bytes: largestStored,
        worker_loop_delay_max_ms: figures.loopDelayMaxMs,
        peak_rss_during_hostile_mb: figures.peakRssMb,
        peak_measure: peakReset ? "VmHWM" : "maxRSS",
      });

      expect(chars.status).toBe("error");
      expect(chars.response?.error).toBe(
        'pipeline "extract_fields" failed: field "f0": more than 10000 matches, the bound per field; make the pattern more specific',
      );
      expect(over.status).toBe("error");
      expect(over.response?.error).toMatch(
        /^pipeline "extract_fields" returned a result of \d+ bytes \(serialized JSON\), more than the 1048576 bytes IX_MAX_RESULT_BYTES allows$/,
      );
      expect(overBytes).toBeGreaterThan(MB);
      expect(big.status).toBe("error");
      expect(big.response?.error).toBe(
        `pipeline "bloat" returned a result of ${20 * MB + 11} bytes (serialized JSON), more than the 1048576 bytes IX_MAX_RESULT_BYTES allows`,
      );
      // Only the request is large (the 1 MB text); every stored response is an error message.
      expect(largestStored).toBeLessThan(4_096);
      for (const { job } of during) expect(job.response?.result).toEqual(INVOICE_RESULT);
      expect(duringMs).toBeLessThan(normalMs + TRIVIAL_SLOWDOWN_BOUND_MS);
      expect(figures.loopDelayMaxMs).toBeLessThan(LOOP_DELAY_BOUND_MS);
      // Before, the worker reached 2.5–3.2 GB on this job; now the largest thing a thread holds is the 20 MB string.
      expect(figures.peakRssMb).toBeLessThan(800);
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
    }
  });

  test("pipelines that ignore their signal are terminated after the kill grace: no zombie runs, never more runs than the concurrency", { timeout: 120_000 }, async ({
    database: { db, url },
  }) => {
    const dir = await mkdtemp(join(tmpdir(), "ix-heartbeats-"));
    const processes: IxProcess[] = [];
    try {
      const concurrency = 2;
      const worker = await startWorker(
        db,
        workerEnv(url, {
          IX_WORKER_CONCURRENCY: String(concurrency),
          IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "1",
          IX_PIPELINE_KILL_GRACE_SECONDS: "1",
        }),
        processes,
      );
      const normal: number[] = [];
      for (let i = 0; i < 3; i++) normal.push((await trivialRun(db, "bob")).ms);

      const phaseStart = worker.lines.length;
      const stubborn: Job[] = [];
      for (let i = 0; i < 3; i++) {
        stubborn.push(await submit(db, "mallory", { use_case: "spin_beat", context: { texts: ["t"] }, options: { dir } }));
        stubborn.push(await submit(db, "mallory", { use_case: "hang_beat", context: { texts: ["t"] }, options: { dir } }));
      }
      // The other client's jobs queue behind them; each gets a slot as a stubborn run is terminated.
      const others = [];
      for (let i = 0; i < 3; i++) others.push(await trivial(db, "bob"));
      const ended = await Promise.all(stubborn.map((job) => terminal(db, job)));
      const served = await Promise.all(others.map((job) => terminal(db, job)));

      const readBeats = async (): Promise<Heartbeat[]> =>
        Promise.all((await readdir(dir)).map(async (file) => JSON.parse(await readFile(join(dir, file), "utf8")) as Heartbeat));
      // A zombie keeps beating every 50 ms; a run is over once its last beat is 20 beats old.
      const quiet = await waitFor(
        "every stubborn run to stop beating",
        async () => {
          const beats = await readBeats();
          return beats.length === stubborn.length && beats.every((b) => Date.now() - b.lastBeat > 20 * BEAT_MS) ? beats : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      const figures = await phaseFigures(worker, phaseStart);
      const zombies = (await readBeats()).filter((b) => Date.now() - b.lastBeat <= 20 * BEAT_MS).length;
      // Runs alive at once, from each run's first and last beat.
      const events = quiet.flatMap((b) => [
        { at: b.firstBeat, delta: 1 },
        { at: b.lastBeat, delta: -1 },
      ]);
      events.sort((x, y) => x.at - y.at || x.delta - y.delta);
      let alive = 0;
      let peakConcurrent = 0;
      for (const event of events) {
        alive += event.delta;
        peakConcurrent = Math.max(peakConcurrent, alive);
      }
      const longestRunMs = Math.max(...quiet.map((b) => b.lastBeat - b.firstBeat));
      const terminated = worker.lines.filter((line) => String(line.msg).includes("its thread is terminated")).length;

      printFigures("isolation-stubborn", {
        stubborn_runs: quiet.length,
        threads_terminated: terminated,
        zombie_runs: zombies,
        peak_concurrent_runs: peakConcurrent,
        concurrency,
        longest_run_ms: longestRunMs,
        trivial_normal_ms: round(median(normal)),
        worker_loop_delay_max_ms: figures.loopDelayMaxMs,
        peak_rss_mb: figures.peakRssMb,
      });

      for (const job of ended) {
        expect(job.status).toBe("error");
        expect(job.response?.error).toBe(`pipeline "${job.request.use_case}" timed out after 1 s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)`);
      }
      for (const job of served) expect(job.response?.result).toEqual(INVOICE_RESULT);
      // Each stubborn job ran once, in the worker process, in a pipeline thread.
      expect(quiet.map((b) => b.requestId).sort()).toEqual(stubborn.map((j) => j.request_id).sort());
      expect(quiet.every((b) => b.pid === worker.pid && b.threadId !== 0)).toBe(true);
      expect(terminated).toBe(stubborn.length);
      expect(zombies).toBe(0);
      expect(peakConcurrent).toBeLessThanOrEqual(concurrency);
      // Terminated after timeout + grace (2 s); generous, the point is that it ends.
      expect(longestRunMs).toBeLessThan(5_000);
      expect(figures.loopDelayMaxMs).toBeLessThan(LOOP_DELAY_BOUND_MS);
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
    } finally {
      killAll(processes);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
