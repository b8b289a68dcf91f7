import { envDefault, envVar, Job, parseEnv } from "@ix/contracts";
import { connect, sql } from "@ix/store";
import { freePort } from "@ix/provision";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { statusCounts } from "../src/activity.ts";
import { printFigures, seededRandom } from "../src/figures.ts";
import { type IxProcess, killAll, spawnIx } from "../src/processes.ts";
import { startReceiver } from "../src/receivers.ts";
import { startReplication } from "../src/replication.ts";
import { startServiceAddress } from "../src/service-address.ts";
import { pace, waitFor } from "../src/wait.ts";

/** CI size; `IX_FAULTS_FAILOVER_JOBS=2000 pnpm --filter @ix/faults exec vitest run test/failover.test.ts` runs the full one. */
const { IX_FAULTS_FAILOVER_JOBS: JOBS } = parseEnv(z.object({ IX_FAULTS_FAILOVER_JOBS: envDefault(envVar.int(50, 100_000), 300) }), process.env);
/** The failover starts once this share of the jobs has been accepted, so jobs are queued, running and being delivered. */
const FAILOVER_AT = Math.floor(JOBS * 0.4);
/**
 * How long the service is without a primary, the time a managed service takes to notice and promote (20–60 s
 * in practice). Longer than the workers' lease, so runs claimed before the crash are rescued on the new primary.
 */
const DETECTION_MS = 3_000;
const SUBMITTERS = 4;
const RETRY_AFTER_SECONDS = "1";

interface Callback {
  jobId: string;
  /** Which run produced the result: a second stored result for the job would differ in these. */
  result: string;
}

/**
 * A primary failover under load (FAULTS.md, "Failover"): ix's API and two
 * workers reach PostgreSQL only through a service address. While clients
 * submit jobs with callbacks, the primary is crashed (`pg_ctl stop -m
 * immediate`); a second later its synchronous standby is promoted and the
 * address moved to it, dropping every connection, as a managed service or a
 * virtual IP does. No ix process is restarted.
 */
describe("failover to a synchronous standby under load", () => {
  test("nothing accepted is lost, no job has two stored results, processes reconnect on their own", { timeout: 60_000 + JOBS * 60 }, async () => {
    const random = seededRandom(18);
    const replication = await startReplication({ synchronous: true, synchronousCommit: "on" });
    const receiver = await startReceiver((res) => res.writeHead(204).end());
    const processes: IxProcess[] = [];
    const address = await startServiceAddress(replication.primary.port);
    try {
      await replication.createIxDatabase();
      const serviceUrl = address.url("ix");
      const common = { IX_POSTGRES_URL: serviceUrl, IX_CALLBACK_ALLOWED_HOSTS: "127.0.0.1", IX_LOG_LEVEL: "info" };
      const api = spawnIx("api", {
        ...common,
        IX_API_PORT: "0",
        IX_API_DB_CONNECT_TIMEOUT_MS: "1000",
        IX_API_STATEMENT_TIMEOUT_MS: "3000",
        IX_API_RETRY_AFTER_SECONDS: RETRY_AFTER_SECONDS,
      });
      const workerEnv = {
        ...common,
        IX_WORKER_CONCURRENCY: "4",
        // Shorter than the outage, so runs whose worker could not renew are rescued and their late completions fenced.
        IX_LEASE_SECONDS: "2",
        IX_SWEEP_INTERVAL_SECONDS: "0.5",
        IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
        IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5",
        IX_CALLBACK_RETRY_BASE_SECONDS: "0.5",
        // A delivery whose outcome could not be recorded is leased for 2 × this + 5 s, then sent again.
        IX_CALLBACK_TIMEOUT_SECONDS: "2",
        IX_CALLBACK_RETRY_MAX_SECONDS: "2",
      };
      // Worker A is frozen (SIGSTOP) across the failover with runs in flight, and thawed once B has rescued them.
      const metricsPort = await freePort();
      const workers = [spawnIx("worker", { ...workerEnv, IX_WORKER_METRICS_PORT: String(metricsPort) }), spawnIx("worker", workerEnv)];
      const [frozen, survivor] = workers as [IxProcess, IxProcess];
      const inFlight = async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return Number(/^ix_worker_jobs_in_flight (\d+)$/m.exec(text)?.[1] ?? 0);
      };
      processes.push(api, ...workers);
      const apiUrl = String((await api.waitForLine("listening", (line) => line.fault === "listening")).url);
      for (const worker of workers) await worker.waitForLine("started", (line) => line.msg === "worker starting");
      const primary = connect(replication.primary.url("ix"), { max: 2, onIdleError: () => {} });
      await waitFor("both workers registered", async () => (await primary.execute(sql`select 1 from ix_workers`)).rows.length === 2);

      // Clients: each submits its share one after another, retrying a 503 after Retry-After (a resubmission is idempotent).
      const accepted = new Map<string, string>();
      const unavailable: number[] = [];
      let movedAt: number | undefined;
      let firstAcceptedAfterMove: number | undefined;
      let next = 0;
      let failoverStarted: (() => void) | undefined;
      const failoverDue = new Promise<void>((resolve) => {
        failoverStarted = resolve;
      });
      const submitter = async () => {
        for (let n = next++; n < JOBS; n = next++) {
          const requestId = `fo-${n}`;
          const payload = JSON.stringify({
            use_case: "nap",
            ix_client_id: "failover",
            request_id: requestId,
            context: { texts: ["t"] },
            options: { ms: 20 + Math.floor(random() * 181) },
            callback_url: receiver.url,
          });
          for (let attempt = 1; ; attempt++) {
            const response = await fetch(`${apiUrl}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: payload });
            const text = await response.text();
            if (response.status === 201 || response.status === 200) {
              accepted.set(requestId, Job.parse(JSON.parse(text)).job_id);
              if (movedAt !== undefined) firstAcceptedAfterMove ??= Date.now();
              if (accepted.size === FAILOVER_AT) failoverStarted?.();
              break;
            }
            if (response.status !== 503 || attempt >= 60) throw new Error(`POST /jobs ${requestId} answered ${response.status}: ${text}`);
            expect(response.headers.get("retry-after")).toBe(RETRY_AFTER_SECONDS);
            unavailable.push(Date.now());
            await pace(Number(RETRY_AFTER_SECONDS) * 1000);
          }
        }
      };
      const started = Date.now();
      const submitting = Promise.all(Array.from({ length: SUBMITTERS }, submitter));

      // A submitter that fails ends the wait too, rather than leaving it for the test's timeout.
      await Promise.race([failoverDue, submitting]);
      await waitFor("worker A to have runs in flight", async () => (await inFlight()) >= 2, { timeoutMs: 10_000, intervalMs: 10 });
      frozen.child.kill("SIGSTOP");
      const atFailover = await statusCounts(primary);
      await primary.close();
      const crashedAt = Date.now();
      await replication.primary.stop("immediate");
      await pace(DETECTION_MS);
      await replication.promote();
      address.moveTo(replication.standby.port);
      movedAt = Date.now();
      // On the new primary, B's rescuer finds A's leases run out and hands the jobs out again; then A wakes up.
      await survivor.waitForLine("rescued A's runs", (line) => line.msg === "rescued orphaned jobs", 20_000);
      frozen.child.kill("SIGCONT");

      await submitting;
      const submittedMs = Date.now() - started;
      const promoted = connect(replication.standby.url("ix"), { max: 2 });
      try {
        await waitFor("every accepted job done and its callback delivered", async () => {
          const rows = await promoted.execute<{ n: number }>(
            sql`select count(*)::int as n from ix_jobs where status = 'done' and callback_status = 'delivered'`,
          );
          return rows.rows[0]?.n === JOBS;
        }, { timeoutMs: 60_000, intervalMs: 100 });
        const drainedMs = Date.now() - started;

        const stored = (
          await promoted.execute<{ job_id: string; request_id: string; attempts: number; status: string; response: Job["response"] }>(
            sql`select job_id, request_id, attempts, status, response from ix_jobs where client_id = 'failover'`,
          )
        ).rows;
        const byJob = new Map(stored.map((row) => [row.job_id, row]));
        const lost = [...accepted.values()].filter((jobId) => !byJob.has(jobId));
        // One stored result per job: every callback of a job carries the same run's result, the one stored now.
        const callbacks: Callback[] = receiver.received.map((r) => {
          const job = Job.parse(JSON.parse(r.body));
          const meta = job.response?.metadata;
          return { jobId: job.job_id, result: `${meta?.attempt}/${JSON.stringify(job.response?.result)}/${meta?.finished_at}` };
        });
        const resultsByJob = new Map<string, Set<string>>();
        for (const c of callbacks) resultsByJob.set(c.jobId, (resultsByJob.get(c.jobId) ?? new Set()).add(c.result));
        const twoResults = [...resultsByJob.entries()].filter(([, results]) => results.size > 1).map(([jobId]) => jobId);
        const storedDiffers = stored.filter((row) => {
          const meta = row.response?.metadata;
          const results = resultsByJob.get(row.job_id);
          return results === undefined || !results.has(`${meta?.attempt}/${JSON.stringify(row.response?.result)}/${meta?.finished_at}`);
        });
        const duplicateCallbacks = callbacks.length - resultsByJob.size;
        const reruns = stored.reduce((sum, row) => sum + row.attempts, 0);
        // What the workers said about runs that stopped being theirs across the switch.
        const said = (worker: IxProcess, prefix: string) => worker.lines.filter((line) => String(line.msg).startsWith(prefix)).length;
        const stale = (worker: IxProcess) => ({
          fenced: said(worker, "response not stored"),
          dropped: said(worker, "run stopped: its lease was lost"),
        });
        const [staleA, staleB] = [stale(frozen), stale(survivor)];
        const rescued = survivor.lines
          .filter((line) => line.msg === "rescued orphaned jobs")
          .reduce((sum, line) => sum + (Array.isArray(line.requeued) ? line.requeued.length : 0), 0);

        expect(accepted.size).toBe(JOBS);
        expect(lost).toEqual([]);
        expect(stored.map((row) => row.status)).toEqual(Array(JOBS).fill("done"));
        expect(twoResults).toEqual([]);
        expect(storedDiffers.map((row) => row.request_id)).toEqual([]);
        // Fencing across the timeline switch: A's runs, claimed on the old primary, were rescued on the new one,
        // and what A did with them once thawed stored nothing.
        expect(rescued).toBeGreaterThan(0);
        expect(staleA.fenced + staleA.dropped).toBeGreaterThan(0);
        // The failover happened under load: jobs were queued and running when the primary crashed.
        expect((atFailover.pending ?? 0) + (atFailover.running ?? 0)).toBeGreaterThan(0);
        // Nobody restarted anything: every process is the one started before the failover, and drains cleanly.
        const restarted = processes.filter((p) => p.child.exitCode !== null || p.child.signalCode !== null).length;
        expect(restarted).toBe(0);
        for (const p of processes) expect(await p.stop(), p.stderr()).toEqual({ code: 0, signal: null });

        const first503 = unavailable[0];
        const last503 = unavailable.at(-1);
        printFigures("failover", {
          jobs: JOBS,
          synchronous_commit: "on",
          accepted_2xx: accepted.size,
          lost: lost.length,
          two_stored_results: twoResults.length,
          pending_at_failover: atFailover.pending ?? 0,
          running_at_failover: atFailover.running ?? 0,
          no_primary_ms: movedAt - crashedAt,
          first_2xx_after_move_ms: firstAcceptedAfterMove === undefined ? "none" : firstAcceptedAfterMove - movedAt,
          answers_503: unavailable.length,
          seconds_of_503: first503 === undefined || last503 === undefined ? 0 : ((last503 - first503) / 1000).toFixed(1),
          reruns,
          rescued,
          stale_runs_frozen_worker: staleA.fenced + staleA.dropped,
          stale_runs_other_worker: staleB.fenced + staleB.dropped,
          stale_completions_fenced: staleA.fenced + staleB.fenced,
          stale_runs_dropped_at_renewal: staleA.dropped + staleB.dropped,
          duplicate_callbacks: duplicateCallbacks,
          processes_restarted: restarted,
          submitted_ms: submittedMs,
          drained_ms: drainedMs,
        });
      } finally {
        await promoted.close();
      }
    } finally {
      killAll(processes);
      await address.close();
      await receiver.close();
      await replication.close();
    }
  });
});
