import { randomBytes } from "node:crypto";
import { Job, ResponseIX, type RequestIX } from "@ix/contracts";
import { and, asc, eq, getTableColumns, inArray, isNotNull, isNull, lt, lte, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "./db";
import { sqlState } from "./errors";
import { ixJobs, type JobRow } from "./schema";

/** LISTEN on this channel to be woken when a job becomes pending (spec §4). */
export const PENDING_CHANNEL = "ix_jobs_pending";

const jobColumns = getTableColumns(ixJobs);
const Uuid = z.uuid();

/** The database's clock, or an explicit instant for tests (spec §3 "one clock"). */
function clock(now: Date | undefined): SQL {
  return now ? sql`${now.toISOString()}::timestamptz` : sql`now()`;
}

function iso(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

/** Every row leaves the repo as a validated Job contract. */
export function toJob(row: JobRow): Job {
  return Job.parse({
    job_id: row.jobId,
    ix_id: row.ixId,
    client_id: row.clientId,
    request_id: row.requestId,
    status: row.status,
    request: row.request,
    response: row.response,
    callback_url: row.callbackUrl,
    callback_status: row.callbackStatus,
    attempts: row.attempts,
    created_at: row.createdAt.toISOString(),
    started_at: iso(row.startedAt),
    finished_at: iso(row.finishedAt),
  });
}

/** 64 bits from the CSPRNG, as 16 lowercase hex characters (spec §3). */
export function newIxId(): string {
  return randomBytes(8).toString("hex");
}

export interface InsertPendingParams {
  request: RequestIX;
  callbackUrl?: string | null;
}

export interface InsertPendingResult {
  job: Job;
  /** false: a job with this `(client_id, request_id)` existed (or came earlier in the batch) and is returned unchanged. */
  created: boolean;
}

/**
 * Inserts a pending job, or returns the existing one for the same
 * `(client_id, request_id)` unchanged: the first insert's status, callback_url
 * and ix_id win (spec §3). A new row wakes idle workers through pg_notify in
 * the same statement, so the notification is sent exactly when the row commits.
 */
export async function insertPending(db: Executor, params: InsertPendingParams): Promise<InsertPendingResult> {
  const [result] = await insertPendingMany(db, [params]);
  if (!result) throw new Error("insertPendingMany returned no result for one item");
  return result;
}

function correlationKey(clientId: string, requestId: string): string {
  return JSON.stringify([clientId, requestId]);
}

/**
 * `insertPending` for many submissions in one statement: one
 * `insert … select from unnest(…) on conflict do nothing returning …, pg_notify(…)`,
 * then one re-select of the keys that already existed. Results come back in
 * input order. Batching exists because NOTIFY serialises commits (PostgreSQL
 * holds a database-wide lock from PreCommit_Notify until the commit record is
 * flushed), so one transaction per submission cannot share a WAL flush; one
 * statement per batch pays one flush, and PostgreSQL collapses the identical
 * notifications of a transaction, so a batch wakes workers once.
 *
 * Within a batch the first item of a key wins, as if the items had been
 * inserted one after another: later items of that key get `created: false`
 * and the first's row. They are dropped before the statement (ON CONFLICT DO
 * NOTHING would skip them too, but the first's row could not be re-read in the
 * same statement).
 */
export async function insertPendingMany(
  db: Executor,
  items: readonly InsertPendingParams[],
): Promise<InsertPendingResult[]> {
  if (items.length === 0) return [];
  const keys = items.map(({ request }) => correlationKey(request.ix_client_id, request.request_id));
  const firstOfKey = new Map<string, number>();
  keys.forEach((key, index) => {
    if (!firstOfKey.has(key)) firstOfKey.set(key, index);
  });
  const firsts = [...firstOfKey.values()].map((index) => items[index]!);
  // Rows go in in one global order: an insert that meets another transaction's
  // uncommitted row of the same key waits for it, so two batches inserting
  // overlapping keys in different orders could deadlock. In one order they cannot.
  firsts.sort((a, b) => compareKeys(a.request, b.request));
  const values = firsts.map(({ request, callbackUrl = null }) => {
    const ixId = newIxId();
    // A client's own ix_id is ignored: ix assigns it (spec §2).
    const stored: RequestIX = { ...request, ix_id: ixId };
    return { ixId, clientId: request.ix_client_id, requestId: request.request_id, request: stored, callbackUrl };
  });
  // One array per column rather than Drizzle's per-row VALUES: the statement's
  // text and its five parameters are the same at any batch size, and building it
  // costs nothing per row (Drizzle's builder was ~a quarter of the API's CPU
  // under load, BENCHMARKS.md). `with ordinality … order by` keeps key order.
  const inserted = await db.execute<Record<string, unknown>>(sql`
    insert into ix_jobs (ix_id, client_id, request_id, request, callback_url)
    select v.ix_id, v.client_id, v.request_id, v.request, v.callback_url
    from unnest(
      ${sql.param(values.map((v) => v.ixId))}::text[],
      ${sql.param(values.map((v) => v.clientId))}::text[],
      ${sql.param(values.map((v) => v.requestId))}::text[],
      ${sql.param(values.map((v) => JSON.stringify(v.request)))}::jsonb[],
      ${sql.param(values.map((v) => v.callbackUrl))}::text[]
    ) with ordinality as v(ix_id, client_id, request_id, request, callback_url, n)
    order by v.n
    on conflict (client_id, request_id) do nothing
    returning ix_jobs.*, pg_notify(${PENDING_CHANNEL}, '') as notified`);

  const byKey = new Map<string, InsertPendingResult>();
  for (const raw of inserted.rows) {
    const row = fromDriverRow(raw);
    byKey.set(correlationKey(row.clientId, row.requestId), { job: toJob(row), created: true });
  }
  const conflicted = values.filter((v) => !byKey.has(correlationKey(v.clientId, v.requestId)));
  if (conflicted.length > 0) {
    // The conflicting rows are committed (ON CONFLICT waited for them), so this
    // statement's fresh snapshot sees them.
    const existing = await db
      .select()
      .from(ixJobs)
      .where(
        sql`(${ixJobs.clientId}, ${ixJobs.requestId}) in (select * from unnest(${sql.param(conflicted.map((v) => v.clientId))}::text[], ${sql.param(conflicted.map((v) => v.requestId))}::text[]))`,
      );
    for (const row of existing) byKey.set(correlationKey(row.clientId, row.requestId), { job: toJob(row), created: false });
  }
  return keys.map((key, index) => {
    const result = byKey.get(key);
    if (!result) {
      const [clientId, requestId] = JSON.parse(key) as [string, string];
      throw new Error(
        `job (${clientId}, ${requestId}) conflicted on insert but was gone when re-read (pruned concurrently?)`,
      );
    }
    return firstOfKey.get(key) === index ? result : { job: result.job, created: false };
  });
}

/** A raw `ix_jobs` row (snake_case, driver values) as Drizzle's select would map it. */
function fromDriverRow(raw: Record<string, unknown>): JobRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(jobColumns)) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as JobRow;
}

function compareKeys(a: RequestIX, b: RequestIX): number {
  if (a.ix_client_id !== b.ix_client_id) return a.ix_client_id < b.ix_client_id ? -1 : 1;
  return a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : 0;
}

export async function get(db: Executor, jobId: string): Promise<Job | null> {
  // A malformed id cannot name a job; answering null keeps bad input from becoming a SQL error.
  if (!Uuid.safeParse(jobId).success) return null;
  const rows = await db.select().from(ixJobs).where(eq(ixJobs.jobId, jobId));
  return rows[0] ? toJob(rows[0]) : null;
}

export async function getByCorrelation(
  db: Executor,
  { clientId, requestId }: { clientId: string; requestId: string },
): Promise<Job | null> {
  const rows = await db
    .select()
    .from(ixJobs)
    .where(and(eq(ixJobs.clientId, clientId), eq(ixJobs.requestId, requestId)));
  return rows[0] ? toJob(rows[0]) : null;
}

export interface ClaimParams {
  limit: number;
}

/**
 * Claims up to `limit` of the oldest pending jobs in one statement: the rows
 * are locked with FOR UPDATE SKIP LOCKED, so concurrent claimers never get the
 * same row and never wait on each other, then set running (spec §3).
 * Returns them oldest first.
 *
 * The claim commits durably. Committing it without waiting for the WAL flush
 * (synchronous_commit off) was measured to halve pickup latency (p50 ~4 → ~2 ms)
 * but a server crash could then forget a claim whose pipeline had already
 * started, and the job would run a second time: ix does not trade that away.
 */
export async function claimPending(db: Executor, params: ClaimParams): Promise<Job[]> {
  const rows = await claimPendingStatement(db, params);
  return rows.sort(byCreation).map(toJob);
}

/**
 * The claim statement itself, unexecuted, so the benchmark can EXPLAIN exactly
 * what `claimPending` runs (spec §8 "scale"): `.toSQL()` gives its text and
 * parameters.
 */
export function claimPendingStatement(db: Executor, { limit }: ClaimParams) {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`claim limit must be a positive integer, got ${limit}`);
  const next = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(eq(ixJobs.status, "pending"))
    .orderBy(asc(ixJobs.createdAt), asc(ixJobs.jobId))
    .limit(limit)
    .for("update", { skipLocked: true });
  return db
    .update(ixJobs)
    .set({ status: "running", startedAt: sql`now()` })
    // `= any(array(…))` runs the locking subquery once and then fetches each row
    // by primary key. `in (subquery)` let the planner hash-join against a
    // sequential scan of the whole table for batch claims (measured: 20k rows
    // scanned to claim 500), which grows with the terminal rows (spec §8 "scale").
    .where(sql`${ixJobs.jobId} = any(array(${next}))`)
    .returning();
}

export async function claimNextPending(db: Executor): Promise<Job | null> {
  const [job] = await claimPending(db, { limit: 1 });
  return job ?? null;
}

function byCreation(a: JobRow, b: JobRow): number {
  const byTime = a.createdAt.getTime() - b.createdAt.getTime();
  return byTime !== 0 ? byTime : a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}

export interface Completion {
  jobId: string;
  /** The `attempts` value the claimer saw: the fence (spec §3). */
  attempts: number;
  response: ResponseIX;
}

/**
 * Finishes many running jobs in one fenced statement. A row changes only while
 * it is still `running` with the attempts its claimer saw, so a worker presumed
 * dead cannot overwrite the run that replaced it. The status is `done` iff
 * `response.error` is null. Returns the ids that applied.
 */
export async function markDoneMany(db: Executor, completions: readonly Completion[]): Promise<string[]> {
  if (completions.length === 0) return [];
  const ids: string[] = [];
  const attempts: number[] = [];
  const responses: string[] = [];
  for (const c of completions) {
    ids.push(c.jobId);
    attempts.push(c.attempts);
    responses.push(JSON.stringify(ResponseIX.parse(c.response)));
  }
  const result = await db.execute<{ job_id: string }>(sql`
    update ix_jobs as j set
      status = case when c.response -> 'error' = 'null'::jsonb then 'done' else 'error' end,
      response = c.response,
      finished_at = now(),
      callback_next_attempt_at = case when j.callback_url is not null then now() end
    from (
      select * from unnest(${sql.param(ids)}::uuid[], ${sql.param(attempts)}::int[], ${sql.param(responses)}::jsonb[])
        as u(job_id, attempts, response)
    ) as c
    where j.job_id = c.job_id and j.status = 'running' and j.attempts = c.attempts
    returning j.job_id`);
  return result.rows.map((r) => r.job_id);
}

/** Finishes one running job (fenced); `done` iff `response.error` is null. Reports whether it applied. */
export async function markDone(db: Executor, completion: Completion): Promise<boolean> {
  return (await markDoneMany(db, [completion])).length === 1;
}

/** Finishes one running job as `error` (fenced). The response must carry the error. */
export async function markError(
  db: Executor,
  completion: Completion & { response: ResponseIX & { error: string } },
): Promise<boolean> {
  if (typeof completion.response.error !== "string") {
    throw new TypeError("markError needs a response whose error is a string");
  }
  return markDone(db, completion);
}

/** Sets callback_status and nothing else; reports whether the job exists. */
export async function updateCallbackStatus(
  db: Executor,
  { jobId, callbackStatus }: { jobId: string; callbackStatus: "delivered" | "failed" | null },
): Promise<boolean> {
  const rows = await db
    .update(ixJobs)
    .set({ callbackStatus })
    .where(eq(ixJobs.jobId, jobId))
    .returning({ jobId: ixJobs.jobId });
  return rows.length === 1;
}

export interface SweepParams {
  /** Running rows whose started_at is older than this many seconds are orphans (2 × pipeline timeout). */
  horizonSeconds: number;
  /** Starts allowed before an orphan ends `error` (IX_MAX_ATTEMPTS). */
  maxAttempts: number;
  now?: Date;
}

/**
 * Resets orphaned running jobs in one guarded statement (spec §3): back to
 * pending with attempts + 1, or, when attempts + 1 reaches maxAttempts, to
 * error with a response that says why.
 */
export async function sweepOrphans(
  db: Executor,
  { horizonSeconds, maxAttempts, now }: SweepParams,
): Promise<{ requeued: string[]; failed: string[] }> {
  const at = clock(now);
  const max = sql`${maxAttempts}::int`;
  const horizon = sql`${horizonSeconds}::float8`;
  const isoAt = (ts: SQL) => sql`to_char(${ts} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  const result = await db.execute<{ job_id: string; status: "pending" | "error" }>(sql`
    update ix_jobs set
      attempts = attempts + 1,
      status = case when attempts + 1 >= ${max} then 'error' else 'pending' end,
      started_at = case when attempts + 1 >= ${max} then started_at end,
      finished_at = case when attempts + 1 >= ${max} then ${at} end,
      callback_next_attempt_at = case when attempts + 1 >= ${max} and callback_url is not null then ${at} end,
      response = case when attempts + 1 >= ${max} then jsonb_build_object(
        'use_case', request ->> 'use_case',
        'ix_client_id', client_id,
        'request_id', request_id,
        'ix_id', ix_id,
        'error', format('job orphaned %s times: its worker stopped before finishing (crash, kill or timeout past %s s); giving up after %s attempts',
                        attempts + 1, ${horizon}, ${max}),
        'result', null,
        'metadata', jsonb_build_object(
          'pipeline', request ->> 'use_case',
          'started_at', ${isoAt(sql`started_at`)},
          'finished_at', ${isoAt(at)},
          'duration_ms', greatest(0, floor(extract(epoch from (${at} - started_at)) * 1000))::bigint,
          'attempt', attempts + 1
        )
      ) end
    where status = 'running' and started_at < ${at} - make_interval(secs => ${horizon})
    returning job_id, status`);
  const requeued: string[] = [];
  const failed: string[] = [];
  for (const row of result.rows) (row.status === "error" ? failed : requeued).push(row.job_id);
  return { requeued, failed };
}

export interface CallbackDelivery {
  job: Job;
  /** 1-based number of this delivery attempt; the fence for recording its outcome. */
  attempt: number;
}

/**
 * Claims due callback deliveries with SKIP LOCKED and leases them: the next
 * attempt time moves `leaseSeconds` ahead, so a worker that dies mid-POST
 * leaves the delivery to be retried after the lease instead of lost, and two
 * workers never send the same attempt.
 */
export async function claimDueCallbacks(
  db: Executor,
  { limit, leaseSeconds, now }: { limit: number; leaseSeconds: number; now?: Date },
): Promise<CallbackDelivery[]> {
  const at = clock(now);
  const due = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(and(isNotNull(ixJobs.callbackNextAttemptAt), lte(ixJobs.callbackNextAttemptAt, at), isNull(ixJobs.callbackStatus)))
    .orderBy(asc(ixJobs.callbackNextAttemptAt))
    .limit(limit)
    .for("update", { skipLocked: true });
  const rows = await db
    .update(ixJobs)
    .set({
      callbackAttempts: sql`${ixJobs.callbackAttempts} + 1`,
      callbackNextAttemptAt: sql`${at} + make_interval(secs => ${leaseSeconds}::float8)`,
    })
    .where(inArray(ixJobs.jobId, due))
    .returning();
  return rows.map((row) => ({ job: toJob(row), attempt: row.callbackAttempts }));
}

export type CallbackOutcome =
  | { kind: "delivered" }
  | { kind: "retry"; error: string; delaySeconds: number }
  | { kind: "failed"; error: string };

/**
 * Records the outcome of delivery attempt `attempt`, fenced on it: an attempt
 * whose lease ran out and was re-claimed cannot overwrite its successor.
 */
export async function recordCallbackAttempt(
  db: Executor,
  { jobId, attempt, outcome, now }: { jobId: string; attempt: number; outcome: CallbackOutcome; now?: Date },
): Promise<boolean> {
  const at = clock(now);
  const set =
    outcome.kind === "delivered"
      ? { callbackStatus: "delivered" as const, callbackNextAttemptAt: null, callbackLastError: null }
      : outcome.kind === "failed"
        ? { callbackStatus: "failed" as const, callbackNextAttemptAt: null, callbackLastError: outcome.error }
        : {
            callbackNextAttemptAt: sql`${at} + make_interval(secs => ${outcome.delaySeconds}::float8)`,
            callbackLastError: outcome.error,
          };
  const rows = await db
    .update(ixJobs)
    .set(set)
    .where(and(eq(ixJobs.jobId, jobId), eq(ixJobs.callbackAttempts, attempt), isNull(ixJobs.callbackStatus)))
    .returning({ jobId: ixJobs.jobId });
  return rows.length === 1;
}

/** Delivery bookkeeping for one job, for operators and tests. */
export async function getCallbackState(
  db: Executor,
  jobId: string,
): Promise<{ attempts: number; nextAttemptAt: Date | null; lastError: string | null } | null> {
  const rows = await db
    .select({
      attempts: ixJobs.callbackAttempts,
      nextAttemptAt: ixJobs.callbackNextAttemptAt,
      lastError: ixJobs.callbackLastError,
    })
    .from(ixJobs)
    .where(eq(ixJobs.jobId, jobId));
  return rows[0] ?? null;
}

const Cursor = z.tuple([z.string(), z.uuid()]);

function encodeCursor(createdAt: string, jobId: string): string {
  return Buffer.from(JSON.stringify([createdAt, jobId])).toString("base64url");
}

function decodeCursor(cursor: string): [string, string] | null {
  try {
    const parsed = Cursor.safeParse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
    return parsed.success && !Number.isNaN(Date.parse(parsed.data[0])) ? parsed.data : null;
  } catch {
    return null;
  }
}

export class InvalidCursorError extends Error {
  constructor(options?: ErrorOptions) {
    super("cursor is not one this API issued", options);
    this.name = "InvalidCursorError";
  }
}

/**
 * One page of a client's jobs, newest first, by keyset on (created_at, job_id).
 * The cursor carries created_at at full microsecond precision, which a JS Date
 * would round away.
 */
export async function listJobs(
  db: Executor,
  params: { clientId: string; status?: Job["status"]; limit: number; cursor?: string },
): Promise<{ items: Job[]; nextCursor: string | null }> {
  const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor);
  if (after === null) throw new InvalidCursorError();
  const rows = await db
    .select({ ...jobColumns, createdAtText: sql<string>`${ixJobs.createdAt}::text` })
    .from(ixJobs)
    .where(
      and(
        eq(ixJobs.clientId, params.clientId),
        params.status ? eq(ixJobs.status, params.status) : undefined,
        after ? sql`(${ixJobs.createdAt}, ${ixJobs.jobId}) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : undefined,
      ),
    )
    .orderBy(sql`${ixJobs.createdAt} desc, ${ixJobs.jobId} desc`)
    .limit(params.limit + 1)
    .catch((error: unknown) => {
      // A forged cursor can decode yet hold an instant PostgreSQL rejects (data exception, class 22).
      if (after && sqlState(error)?.startsWith("22")) throw new InvalidCursorError({ cause: error });
      throw error;
    });
  const page = rows.slice(0, params.limit);
  const last = page.at(-1);
  return {
    items: page.map(({ createdAtText: _, ...row }) => toJob(row)),
    nextCursor: rows.length > params.limit && last ? encodeCursor(last.createdAtText, last.jobId) : null,
  };
}

/**
 * Deletes up to `batchSize` terminal jobs finished more than `olderThanSeconds`
 * ago whose callback is not still due; returns how many. Callers loop until 0,
 * so no single statement holds locks on a large part of the table.
 */
export async function pruneTerminal(
  db: Executor,
  { olderThanSeconds, batchSize, now }: { olderThanSeconds: number; batchSize: number; now?: Date },
): Promise<number> {
  const at = clock(now);
  const victims = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(
      and(
        or(eq(ixJobs.status, "done"), eq(ixJobs.status, "error")),
        lt(ixJobs.finishedAt, sql`${at} - make_interval(secs => ${olderThanSeconds}::float8)`),
        isNull(ixJobs.callbackNextAttemptAt),
      ),
    )
    .limit(batchSize)
    .for("update", { skipLocked: true });
  const rows = await db.delete(ixJobs).where(inArray(ixJobs.jobId, victims)).returning({ jobId: ixJobs.jobId });
  return rows.length;
}
