import type { RequestIX } from "@ix/contracts";
import { connect, type Database, type Executor, jobs, lifecycle, migrateUp, sql } from "@ix/store";
import { percentile } from "./stats.ts";

// Fair share measured (BENCHMARKS.md, "Fair share"): what a claim costs when the
// pending jobs belong to one client or to many, and how long a small client
// waits behind a large client's backlog. The fairness run takes any claim
// statement, so tools/bench/src/fair-share-alternatives.ts runs it on the
// mechanisms that were not chosen.

export const FAIR_USE_CASE = "bench_noop";
/** Submissions per `insertPendingMany` call: the most one `POST /jobs/batch` request carries. */
export const SUBMIT_BATCH = 1_000;
/** B's jobs in the fairness run. */
export const LATE_JOBS = 20;

/** `total` requests spread over `clients` clients in turn (job g is client g mod clients's), as many clients submitting at once would. */
export function interleavedRequests(total: number, clients: number, prefix: string): RequestIX[] {
  return Array.from({ length: total }, (_, g) => request(`client-${g % clients}`, `${prefix}${g}`));
}

function request(clientId: string, requestId: string): RequestIX {
  return { use_case: FAIR_USE_CASE, ix_client_id: clientId, request_id: requestId, context: { texts: ["bench"] }, options: {} };
}

/** Submits through `jobs.insertPendingMany` (turns given as the API gives them), SUBMIT_BATCH at a time; returns the ms it took. */
export async function submit(db: Database, requests: readonly RequestIX[]): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < requests.length; i += SUBMIT_BATCH) {
    await jobs.insertPendingMany(
      db,
      requests.slice(i, i + SUBMIT_BATCH).map((r) => ({ request: r })),
    );
  }
  return performance.now() - started;
}

export interface ClientClaimResult {
  system: "ix-clients";
  /** Clients holding the pending jobs, an equal share each. */
  clients: number;
  pending: number;
  /** Submitting the pending jobs (each batch computes its clients' turns). */
  submit_jobs_per_s: number;
  claim_1_p50_ms: number;
  claim_1_p99_ms: number;
  /** The batch claim's limit: a worker of concurrency C without a local queue refills up to C slots per claim. */
  claim_batch: number;
  claim_batch_p50_ms: number;
  claim_batch_p99_ms: number;
}

/**
 * Claim latency by the number of clients holding the pending jobs: for each
 * count, the table is emptied, `pending` jobs are submitted spread over that
 * many clients, and the routed `jobs.claimPending` is timed one claim at a
 * time, first with limit 1, then with limit `batch`. Claims commit and their
 * jobs stay running (a few hundred of the pending jobs, so the queue barely
 * shrinks).
 */
export async function measureClientClaims(
  url: string,
  { pending, clients, batch }: { pending: number; clients: readonly number[]; batch: number },
  log: (message: string) => void,
): Promise<ClientClaimResult[]> {
  const db = connect(url, { max: 2, applicationName: "ix-bench-clients" });
  try {
    await migrateUp(db);
    const results: ClientClaimResult[] = [];
    const singles = Math.max(1, Math.min(500, Math.floor(pending / 4)));
    const batches = Math.max(1, Math.min(200, Math.floor(pending / (4 * batch))));
    for (const count of clients) {
      const k = Math.min(count, pending);
      await db.execute(sql`truncate ix_jobs`);
      const submitMs = await submit(db, interleavedRequests(pending, k, `k${k}-`));
      await db.execute(sql`vacuum analyze ix_jobs`);
      log(`clients: ${pending} pending jobs over ${k} clients submitted in ${Math.round(submitMs)} ms`);
      const time = async (limit: number, samples: number) => {
        const ms: number[] = [];
        for (let i = 0; i < samples; i++) {
          const started = performance.now();
          const claimed = await jobs.claimPending(db, { limit, useCases: [FAIR_USE_CASE] });
          ms.push(performance.now() - started);
          if (claimed.length !== limit) throw new Error(`clients: a claim of ${limit} over ${k} clients returned ${claimed.length} jobs`);
        }
        return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
      };
      const one = await time(1, singles);
      const many = await time(batch, batches);
      results.push({
        system: "ix-clients",
        clients: k,
        pending,
        submit_jobs_per_s: pending / (submitMs / 1000),
        claim_1_p50_ms: one.p50,
        claim_1_p99_ms: one.p99,
        claim_batch: batch,
        claim_batch_p50_ms: many.p50,
        claim_batch_p99_ms: many.p99,
      });
    }
    return results;
  } finally {
    await db.close();
  }
}

/** What a claim returned, as much as completing the run needs. */
export interface ClaimedRun {
  jobId: string;
  clientId: string;
  requestId: string;
  ixId: string;
  useCase: string;
  attempts: number;
}

/** A claim statement under test: up to `limit` pending jobs set running, committed. */
export type Claim = (db: Executor, limit: number) => Promise<ClaimedRun[]>;

/** The shipped claim, routed as a worker runs it. */
export const shippedClaim: Claim = async (db, limit) =>
  (await jobs.claimPending(db, { limit, useCases: [FAIR_USE_CASE] })).map((job) => ({
    jobId: job.job_id,
    clientId: job.client_id,
    requestId: job.request_id,
    ixId: job.ix_id,
    useCase: job.request.use_case,
    attempts: job.attempts,
  }));

/** Finishes claimed runs `done` through `jobs.completeMany`, as a worker stores a no-op pipeline's results. */
async function completeNoop(db: Database, runs: readonly ClaimedRun[]): Promise<void> {
  const now = new Date();
  await jobs.completeMany(
    db,
    runs.map((run) => ({
      jobId: run.jobId,
      attempts: run.attempts,
      response: lifecycle.buildResponse(
        { client_id: run.clientId, request_id: run.requestId, ix_id: run.ixId, request: { use_case: run.useCase } },
        { pipeline: FAIR_USE_CASE, error: null, result: {}, startedAt: now, finishedAt: now, durationMs: 0, attempt: run.attempts + 1 },
      ),
    })),
  );
}

export interface FairnessRun {
  /** A's jobs started strictly before B's last one started (claims of one statement share a start time). */
  aStartedBeforeBLast: number;
  /** Busy start only: those of them that started after B's submission had committed. */
  aStartedAfterBSubmitted: number | null;
  claims: number;
  /** Claims that returned fewer jobs than asked while both clients still had jobs pending. */
  shortClaims: number;
}

const A = "client-a";
const B = "client-b";

/**
 * The fairness run: client A submits `a` jobs (in batches, as the API would),
 * client B then submits LATE_JOBS; `c` loops claim (`claim`, `limit` at a time)
 * and complete (`jobs.completeMany`, no-op results) at full speed until B's
 * last job has started. Idle start: both backlogs are in place before the
 * loops start. Busy start (`busyAfter`): the loops start on A's backlog, and B
 * submits once they have started `busyAfter` of A's jobs.
 */
export async function runFairness(
  db: Database,
  { a, c, limit, claim, busyAfter }: { a: number; c: number; limit: number; claim: Claim; busyAfter?: number },
): Promise<FairnessRun> {
  if (busyAfter !== undefined && !(busyAfter < a)) throw new RangeError(`fairness: busyAfter (${busyAfter}) must be below A's ${a} jobs`);
  await db.execute(sql`truncate ix_jobs`);
  const backlog = Array.from({ length: a }, (_, g) => request(A, `a${g}`));
  const late = Array.from({ length: LATE_JOBS }, (_, g) => request(B, `b${g}`));
  await submit(db, backlog);
  if (busyAfter === undefined) await submit(db, late);
  await db.execute(sql`analyze ix_jobs`);

  let aStarted = 0;
  let bStarted = 0;
  let bSubmitted = busyAfter === undefined;
  let claims = 0;
  let shortClaims = 0;
  let stop = false;
  let submittedAt: Date | null = null;
  let lateSubmit: Promise<void> | null = null;
  let lateError: unknown = null;
  const deadline = performance.now() + 600_000;
  const step = async () => {
    const runs = await claim(db, limit);
    claims++;
    for (const run of runs) {
      if (run.clientId === A) aStarted++;
      else bStarted++;
    }
    if (runs.length < limit && aStarted < a && (!bSubmitted || bStarted < LATE_JOBS)) shortClaims++;
    if (busyAfter !== undefined && !lateSubmit && aStarted >= busyAfter) {
      lateSubmit = (async () => {
        await submit(db, late);
        const at = await db.execute<{ at: Date }>(sql`select clock_timestamp() as at`);
        submittedAt = at.rows[0]?.at ?? null;
        bSubmitted = true;
      })().catch((error: unknown) => {
        stop = true;
        lateError = error;
      });
    }
    if (bSubmitted && bStarted >= LATE_JOBS) stop = true;
    if (runs.length > 0) await completeNoop(db, runs);
  };
  const loop = async () => {
    try {
      while (!stop) {
        if (performance.now() > deadline) throw new Error(`fairness: B's ${LATE_JOBS} jobs had not all started after 600 s`);
        await step();
      }
    } catch (error) {
      stop = true;
      throw error;
    }
  };
  await Promise.all(Array.from({ length: c }, loop));
  await lateSubmit;
  if (lateError !== null) throw lateError;
  const counted = await db.execute<{ before: string; after: string | null }>(sql`
    with b_last as (select max(started_at) as at from ix_jobs where client_id = ${B})
    select count(*) filter (where started_at < b_last.at) as before,
           count(*) filter (where started_at < b_last.at and started_at > ${submittedAt}::timestamptz) as after
    from ix_jobs, b_last where client_id = ${A} and started_at is not null`);
  const row = counted.rows[0];
  return {
    aStartedBeforeBLast: Number(row?.before ?? Number.NaN),
    aStartedAfterBSubmitted: busyAfter === undefined ? null : Number(row?.after ?? Number.NaN),
    claims,
    shortClaims,
  };
}

export interface FairnessResult {
  system: "ix-fairness";
  a_jobs: number;
  b_jobs: number;
  loops: number;
  claim_limit: number;
  /** Both backlogs in place, then the loops start: A's jobs started before B's last did. */
  a_started_before_b_last: number;
  /** B submits while the loops work through A's backlog: A's jobs started after B's submission and before B's last start. */
  busy_a_started_after_b_submitted: number;
}

/** The fairness figure for the shipped claim, from an idle and from a busy start, with `c` claim+complete loops claiming one job at a time. */
export async function measureFairness(url: string, { a, c }: { a: number; c: number }, log: (message: string) => void): Promise<FairnessResult> {
  const db = connect(url, { max: c + 2, applicationName: "ix-bench-fairness" });
  try {
    await migrateUp(db);
    log(`fairness: A submits ${a} jobs, then B ${LATE_JOBS}; ${c} loops claim and complete one job at a time`);
    const idle = await runFairness(db, { a, c, limit: 1, claim: shippedClaim });
    const busy = await runFairness(db, { a, c, limit: 1, claim: shippedClaim, busyAfter: Math.min(1_000, Math.floor(a / 10)) });
    return {
      system: "ix-fairness",
      a_jobs: a,
      b_jobs: LATE_JOBS,
      loops: c,
      claim_limit: 1,
      a_started_before_b_last: idle.aStartedBeforeBLast,
      busy_a_started_after_b_submitted: busy.aStartedAfterBSubmitted ?? Number.NaN,
    };
  } finally {
    await db.close();
  }
}
