import { sql } from "@ix/store";
import { afterAll, describe, expect, test } from "vitest";
import { registeredWorkers, statusCounts } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { API_KEY, CLIENT_ID, type Cluster, runIn, startCluster } from "../src/hosts/index.ts";
import { createRunsTable, listRuns } from "../src/runs.ts";
import { pace, waitFor } from "../src/wait.ts";

/** CI runs the default size; the full size is IX_PARTITION_JOBS=2000 IX_PARTITION_SECONDS=40 (FAULTS.md, section 12). */
const JOBS = Number(process.env.IX_PARTITION_JOBS ?? "240");
const AFTER_HEAL_JOBS = Math.max(40, Math.round(JOBS / 4));
const LEASE_SECONDS = 2;
/** How long the link stays down: at least three leases, and until every cut-off job is done elsewhere. */
const PARTITION_SECONDS = Number(process.env.IX_PARTITION_SECONDS ?? String(3 * LEASE_SECONDS));
const RETRY_AFTER_SECONDS = "1";
const CALLBACK_HOST_CONCURRENCY = 2;

const authorized = { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" };

/** One request with a deadline: a hung API is a failure here, not a wait. */
async function request(url: string, init: RequestInit = {}) {
  const began = Date.now();
  const response = await fetch(url, { ...init, headers: { ...authorized, ...init.headers }, signal: AbortSignal.timeout(10_000) }).catch((error: unknown) => {
    throw new Error(`${init.method ?? "GET"} ${url}: no answer within 10 s`, { cause: error });
  });
  const body = await response.text();
  return { url, status: response.status, retryAfter: response.headers.get("retry-after"), ms: Date.now() - began, body: body.slice(0, 300) };
}

const probeJob = (requestId: string) =>
  JSON.stringify({ use_case: "recorded", ix_client_id: CLIENT_ID, request_id: requestId, context: { texts: ["probe"] }, options: { ms: 20 } });

/**
 * A worker host cut off mid-run by its link going down (no socket closed: packets
 * vanish) for longer than its lease, with an API host whose database path is cut
 * at the same time. The other worker host rescues and finishes the cut-off jobs;
 * when the link comes back, the cut-off worker's stale completions are fenced out,
 * no callback carries a stale result, and the same process claims and finishes
 * jobs again without a restart. The API host on a live link answers 2xx
 * throughout; the one without its database answers 503 + Retry-After.
 */
describe("partition: a worker host's link down for longer than its lease", () => {
  let cluster: Cluster | undefined;
  // Also when the test times out: a hook still runs then, a finally block may not.
  afterAll(() => cluster?.close(), 30_000);

  test("its jobs are finished elsewhere, its stale completions fenced, callbacks once per result, the same pid recovers", { timeout: 240_000 + PARTITION_SECONDS * 2_000 }, async () => {
    try {
      cluster = await startCluster();
      const { db, network } = cluster;
      await createRunsTable(db);
      const [api1Host, api2Host, proxyHost, w1Host, w2Host, receiverHost, loadHost] = await Promise.all(
        ["api1", "api2", "dbproxy", "w1", "w2", "receiver", "load"].map((name) => (cluster as Cluster).addHost(name)),
      );
      if (!api1Host || !api2Host || !proxyHost || !w1Host || !w2Host || !receiverHost || !loadHost) throw new Error("hosts missing");
      // api2 reaches PostgreSQL only through the proxy host: cutting the proxy's link cuts api2's database
      // path while api2 itself stays reachable by clients.
      const proxy = await cluster.startProxy(proxyHost, `${network.gateway}:5432`);
      const apiEnv = {
        IX_API_DB_CONNECT_TIMEOUT_MS: "1000",
        IX_API_STATEMENT_TIMEOUT_MS: "2000",
        // A request whose statement went out just before the cut answers 503 after this, not after TCP gives up.
        IX_POSTGRES_SOCKET_TIMEOUT_MS: "3000",
        IX_API_RETRY_AFTER_SECONDS: RETRY_AFTER_SECONDS,
      };
      const workerEnv = {
        IX_WORKER_CONCURRENCY: "4",
        IX_LEASE_SECONDS: String(LEASE_SECONDS),
        IX_SWEEP_INTERVAL_SECONDS: "0.5",
        // The v1 horizon (twice this) stays out of the way: only lost leases bring jobs back.
        IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "30",
        IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
        IX_MAX_ATTEMPTS: "10",
        // A statement unanswered this long closes its connection as dead: the worker recovers within it after the link is back.
        IX_POSTGRES_SOCKET_TIMEOUT_MS: "3000",
        IX_CALLBACK_TIMEOUT_SECONDS: "2",
        IX_CALLBACK_HOST_CONCURRENCY: String(CALLBACK_HOST_CONCURRENCY),
        IX_CALLBACK_RETRY_BASE_SECONDS: "0.1",
        IX_CALLBACK_RETRY_MAX_SECONDS: "0.5",
      };
      const w1 = cluster.startWorker(w1Host, workerEnv);
      const w2 = cluster.startWorker(w2Host, workerEnv);
      const [api1, api2, receiver] = await Promise.all([
        cluster.startApi(api1Host, apiEnv),
        cluster.startApi(api2Host, apiEnv, { postgresUrl: cluster.postgresThrough(proxy) }),
        cluster.startReceiver(receiverHost),
      ]);
      await waitFor("both workers registered", async () => (await registeredWorkers(db)) === 2);

      const load = cluster.runLoad(loadHost, [api1, api2], { count: JOBS, prefix: "before", callbackUrl: receiver.url, seed: 18 });
      let loadFailed: unknown;
      load.catch((error: unknown) => {
        loadFailed = error;
      });
      // Cut once the run is well under way and w1 has runs going.
      await waitFor(
        "a sixth of the jobs done and runs in flight on w1",
        async () => {
          if (loadFailed) throw loadFailed;
          const counts = await statusCounts(db);
          const w1Running = await db.execute<{ n: number }>(sql`
            select count(*)::int as n from fault_runs r join ix_jobs j on j.job_id = r.job_id
            where r.pid = ${w1.pid} and j.status = 'running' and r.attempt = j.attempts`);
          return (counts.done ?? 0) >= JOBS / 6 && (w1Running.rows[0]?.n ?? 0) > 0;
        },
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      await network.partition(w1Host);
      await network.partition(proxyHost);
      const cutAt = Date.now();
      // The jobs w1 had claimed and started when its link went down (as the database saw them).
      const cutOff = await db.execute<{ job_id: string; attempts: number }>(sql`
        select j.job_id, j.attempts from fault_runs r join ix_jobs j on j.job_id = r.job_id
        where r.pid = ${w1.pid} and j.status = 'running' and r.attempt = j.attempts`);
      const cutOffIds = cutOff.rows.map((r) => r.job_id);

      // While the link is down: the API on a live link answers 2xx; the one without its database 503 + Retry-After.
      const liveAnswers: number[] = [];
      const cutAnswers: Awaited<ReturnType<typeof request>>[] = [];
      let probes = 0;
      const rescued = async () => {
        const rows = await db.execute<{ n: number }>(sql`
          select count(*)::int as n from ix_jobs where job_id = any(${`{${cutOffIds.join(",")}}`}::uuid[]) and status = 'done'`);
        return rows.rows[0]?.n === cutOffIds.length;
      };
      while (Date.now() - cutAt < PARTITION_SECONDS * 1000 || !(await rescued())) {
        if (Date.now() - cutAt > PARTITION_SECONDS * 1000 + 40_000) {
          const rows = await db.execute(sql`
            select job_id, status, attempts, lease_expires_at, now() as now, (select json_agg(r) from fault_runs r where r.job_id = j.job_id) as runs
            from ix_jobs j where job_id = any(${`{${cutOffIds.join(",")}}`}::uuid[])`);
          throw new Error(`cut-off jobs not rescued within 40 s: ${JSON.stringify(rows.rows)}; w2 said ${JSON.stringify(w2.lines.filter((l) => typeof l.level === "number" && l.level >= 40).slice(-5))}`);
        }
        probes++;
        liveAnswers.push((await request(`${api1.url}/jobs`, { method: "POST", body: probeJob(`live-${probes}`) })).status);
        liveAnswers.push((await request(`${api1.url}/jobs?client_id=${CLIENT_ID}&limit=5`)).status);
        cutAnswers.push(await request(`${api2.url}/jobs`, { method: "POST", body: probeJob(`cut-${probes}`) }));
        cutAnswers.push(await request(`${api2.url}/readyz`));
        expect((await request(`${api2.url}/healthz`)).status).toBe(200);
        await pace(200);
      }
      const healAt = Date.now();
      const lastRunBeforeHeal = await db.execute<{ max: string | null }>(sql`select max(run_id)::text as max from fault_runs`);
      await network.heal(w1Host);
      await network.heal(proxyHost);
      const partitionMs = healAt - cutAt;

      // The same w1 process claims and finishes new jobs: its connections came back on their own.
      const accepted = await load;
      const after = cluster.runLoad(loadHost, [api1, api2], { count: AFTER_HEAL_JOBS, prefix: "after", callbackUrl: receiver.url, seed: 19 });
      after.catch(() => undefined);
      await waitFor(
        "w1 (same pid) to finish a run started after the heal",
        async () => {
          const rows = await db.execute<{ n: number }>(sql`
            select count(*)::int as n from fault_runs where pid = ${w1.pid} and run_id > ${lastRunBeforeHeal.rows[0]?.max ?? "0"}::bigint and finished_at is not null`);
          return (rows.rows[0]?.n ?? 0) > 0;
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      ).catch(async (error: unknown) => {
        const sockets = await runIn(w1Host, "ss", ["-tnoi"]).catch((e: unknown) => String(e));
        throw new Error(`${(error as Error).message}; w1 said ${JSON.stringify(w1.lines.filter((l) => Number(l.level) >= 40).slice(-6))}; its sockets: ${sockets}`);
      });
      const secondsToRecover = (Date.now() - healAt) / 1000;
      const acceptedAfter = await after;
      await waitFor("api2 ready again", async () => (await request(`${api2.url}/readyz`)).status === 200, { timeoutMs: 30_000, intervalMs: 100 });

      // A cut probe answered 503 can still be stored once the link is back: its insert was already written to
      // the socket, and the kernel goes on retransmitting a closed socket's data. 503 asks the client to retry
      // with the same request_id, which then finds that job (FAULTS.md, section 12).
      const cutProbesStored = async () =>
        (await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where request_id like 'cut-%'`)).rows[0]?.n ?? 0;
      let total = JOBS + AFTER_HEAL_JOBS + probes;
      await waitFor(
        "every job done and its callback delivered",
        async () => {
          total = JOBS + AFTER_HEAL_JOBS + probes + (await cutProbesStored());
          const rows = await db.execute<{ n: number }>(sql`
            select count(*)::int as n from ix_jobs where status = 'done' and (callback_url is null or callback_status = 'delivered')`);
          return rows.rows[0]?.n === total;
        },
        // 15 s on a quiet machine; a loaded one needs more (the pool's 3 s socket timeout closes slow connections as dead).
        { timeoutMs: 120_000, intervalMs: 200 },
      ).catch(async (error: unknown) => {
        const states = await db.execute(sql`
          select status, callback_status, count(*)::int as n, max(callback_attempts) as attempts, max(callback_last_error) as last_error
          from ix_jobs group by 1, 2`);
        const hosts = await db.execute(sql`select * from ix_callback_hosts`);
        throw new Error(`${(error as Error).message} (${total} expected); jobs: ${JSON.stringify(states.rows)}; callback hosts: ${JSON.stringify(hosts.rows)}`);
      });
      // w1's stale runs: each dropped at a renewal (lease lost) or fenced at its completion, and logged so.
      const staleLines = () =>
        w1.lines.filter(
          (line) =>
            typeof line.job_id === "string" &&
            cutOffIds.includes(line.job_id) &&
            typeof line.msg === "string" &&
            (line.msg.startsWith("response not stored") || line.msg.includes("lease was lost") || line.msg.startsWith("lease lost before")),
        );
      await waitFor("w1 to report each stale run dropped or fenced", () => new Set(staleLines().map((l) => l.job_id)).size === cutOffIds.length, {
        timeoutMs: 30_000,
      }).catch((error: unknown) => {
        const said = w1.lines.filter((line) => typeof line.job_id === "string" && cutOffIds.includes(line.job_id));
        throw new Error(`${(error as Error).message}; w1 said of its cut-off jobs ${cutOffIds.join(", ")}: ${JSON.stringify(said)}`);
      });
      const fenced = staleLines().filter((l) => String(l.msg).startsWith("response not stored")).length;

      expect(await statusCounts(db)).toEqual({ done: total });
      const stored = await db.execute<{ job_id: string; attempts: number; pid: number; attempt: number; meta_attempt: number; request_id: string }>(sql`
        select job_id, request_id, attempts, (response -> 'result' ->> 'pid')::int as pid, (response -> 'result' ->> 'attempt')::int as attempt,
               (response -> 'metadata' ->> 'attempt')::int as meta_attempt
        from ix_jobs`);
      const runs = await listRuns(db);
      const runsByJob = new Map<string, typeof runs>();
      for (const run of runs) runsByJob.set(run.jobId, [...(runsByJob.get(run.jobId) ?? []), run]);
      let doubleStored = 0;
      let rerunsOfHealthy = 0;
      for (const job of stored.rows) {
        const final = runsByJob.get(job.job_id)?.at(-1);
        // The one stored response is the last run's, its fence matching the row: a stale completion never landed.
        if (!final || job.pid !== final.pid || job.attempt !== final.attempt || job.attempt !== job.attempts || job.meta_attempt !== job.attempts + 1) {
          doubleStored++;
        }
        rerunsOfHealthy += (runsByJob.get(job.job_id) ?? []).slice(0, -1).filter((r) => r.pid !== w1.pid).length;
      }
      const submitted = new Set([
        ...Array.from({ length: JOBS }, (_, i) => `before-${i}`),
        ...Array.from({ length: AFTER_HEAL_JOBS }, (_, i) => `after-${i}`),
      ]);
      const storedIds = new Set(stored.rows.map((r) => r.request_id));
      const lost = [...submitted].filter((id) => !storedIds.has(id)).length;
      const reruns = runs.length - new Set(runs.map((r) => r.jobId)).size;
      const duplicateClaims = runs.length - new Set(runs.map((r) => `${r.jobId}/${r.attempt}`)).size;

      // Callbacks: every job's at least once, every one carrying the stored result (never a stale run's).
      const deliveries = receiver.deliveries();
      const storedResult = new Map(stored.rows.map((r) => [r.job_id, { pid: r.pid, attempt: r.attempt }]));
      const staleCallbacks = receiver.process.lines.filter((line) => {
        if (typeof line.received !== "string") return false;
        const expected = storedResult.get(line.received);
        const got = line.result as { pid?: number; attempt?: number } | null;
        return !expected || got?.pid !== expected.pid || got?.attempt !== expected.attempt;
      }).length;
      const duplicateCallbacks = [...deliveries.values()].reduce((sum, n) => sum + n - 1, 0);

      const w1RunsAfterHeal = runs.filter((r) => r.pid === w1.pid).length;
      for (const p of [w1, w2, api1.process, api2.process]) expect(await p.stop(), p.stderr()).toEqual({ code: 0, signal: null });

      printFigures("partition", {
        jobs: total,
        lost,
        double_stored: doubleStored,
        duplicate_callbacks: duplicateCallbacks,
        stale_callbacks: staleCallbacks,
        reruns,
        cut_off_jobs: cutOffIds.length,
        stale_fenced: fenced,
        stale_dropped: cutOffIds.length - fenced,
        partition_ms: partitionMs,
        seconds_to_recover: secondsToRecover.toFixed(1),
        live_api_2xx: liveAnswers.filter((s) => s >= 200 && s < 300).length,
        live_api_other: liveAnswers.filter((s) => s < 200 || s >= 300).length,
        cut_api_503: cutAnswers.filter((a) => a.status === 503).length,
        cut_api_503_stored_later: await cutProbesStored(),
        cut_api_slowest_ms: Math.max(...cutAnswers.map((a) => a.ms)),
        load_retried_503: accepted.retried_503 + acceptedAfter.retried_503,
        load_retried_error: accepted.retried_error + acceptedAfter.retried_error,
      });
      expect(lost).toBe(0);
      expect(doubleStored).toBe(0);
      expect(duplicateClaims).toBe(0);
      expect(staleCallbacks).toBe(0);
      expect(rerunsOfHealthy).toBe(0);
      expect(cutOffIds.length).toBeGreaterThan(0);
      // Every submitted job had a callback (the probes had none).
      expect(deliveries.size).toBe(submitted.size);
      // Only a delivery w1 had in flight at the cut can be sent again (at-least-once): at most its per-host cap.
      expect(duplicateCallbacks).toBeLessThanOrEqual(CALLBACK_HOST_CONCURRENCY);
      expect(w1RunsAfterHeal).toBeGreaterThan(cutOffIds.length);
      expect(liveAnswers.every((s) => s >= 200 && s < 300)).toBe(true);
      for (const answer of cutAnswers) {
        expect(answer.status, `${JSON.stringify(answer)}; api2 logged ${JSON.stringify(api2.process.lines.filter((l) => Number(l.level) >= 50).slice(0, 3))}`).toBe(503);
        expect(answer.retryAfter).toBe(RETRY_AFTER_SECONDS);
      }
    } finally {
      await cluster?.close();
    }
  });
});
