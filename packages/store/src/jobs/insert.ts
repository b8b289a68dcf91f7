import { randomBytes } from "node:crypto";
import type { Job, RequestIX, TraceContext } from "@ix/contracts";
import { getTableColumns, is, sql, SQL } from "drizzle-orm";
import type { Executor } from "../db.ts";
import { ixJobs } from "../schema.ts";
import { withTurns } from "./fair-share.ts";
import { assertValidSubmissions } from "./input.ts";
import { type SubmittedSchedule, submittedSchedule, toJob } from "./row.ts";

/** LISTEN on this channel to be woken when a job becomes pending. */
export const PENDING_CHANNEL = "ix_jobs_pending";

/** 64 bits from the CSPRNG, as 16 lowercase hex characters. */
export function newIxId(): string {
  return randomBytes(8).toString("hex");
}

export interface InsertPendingParams {
  request: RequestIX;
  callbackUrl?: string | null;
  /** -100…100, higher first; default 0. */
  priority?: number;
  /** Not claimed before this instant (a Date or an ISO-8601 instant); default now. */
  runAt?: Date | string | null;
  /** 1…25 runs; default null: the pipeline's retry policy, else the worker's IX_MAX_ATTEMPTS. */
  maxAttempts?: number | null;
  /** The submitter's W3C trace context; its run and callback join that trace. Default none. */
  trace?: TraceContext | null;
}

export interface InsertPendingResult {
  job: Job;
  /** false: a job with this `(client_id, request_id)` existed (or came earlier in the batch) and is returned unchanged. */
  created: boolean;
  /** The job's scheduling fields as its first submission gave them, for comparing a resubmission. */
  submitted: SubmittedSchedule;
}

/**
 * Inserts a pending job, or returns the existing one for the same
 * `(client_id, request_id)` unchanged: the first insert's status, callback_url
 * and ix_id win, so a client may retry a submission safely. A new row wakes idle
 * workers through pg_notify in the same statement, so the notification is sent
 * exactly when the row commits.
 */
export async function insertPending(db: Executor, params: InsertPendingParams): Promise<InsertPendingResult> {
  const [result] = await insertPendingMany(db, [params]);
  if (!result) throw new Error("insertPendingMany returned no result for one item");
  return result;
}

function correlationKey(clientId: string, requestId: string): string {
  return JSON.stringify([clientId, requestId]);
}

function compareKeys(a: RequestIX, b: RequestIX): number {
  if (a.ix_client_id !== b.ix_client_id) return a.ix_client_id < b.ix_client_id ? -1 : 1;
  return a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : 0;
}

const jobColumns = getTableColumns(ixJobs);
type InsertColumn = keyof typeof ixJobs.$inferInsert;

/**
 * The select list of an `insert … select` into ix_jobs. Drizzle inserts into
 * every column in table order, so every column is listed: the given ones from
 * the source, the others as the schema's own default (or null), so the
 * defaults stay written once, in schema.ts.
 */
function insertSelection(given: Partial<Record<InsertColumn, SQL>>): Record<InsertColumn, SQL.Aliased> {
  const selection = {} as Record<InsertColumn, SQL.Aliased>;
  for (const [key, column] of Object.entries(jobColumns) as Array<[InsertColumn, (typeof jobColumns)[InsertColumn]]>) {
    const fallback = is(column.default, SQL) ? column.default : sql.raw(literal(column.default));
    selection[key] = (given[key] ?? sql`${fallback}::${sql.raw(column.getSQLType())}`).as(column.name);
  }
  return selection;
}

/** A submitted value, or the column's schema default where the submission has none. */
function orDefault(key: "priority" | "runAt", value: SQL): SQL {
  const column = jobColumns[key];
  const fallback = is(column.default, SQL) ? column.default : sql.raw(literal(column.default));
  return sql`coalesce(${value}, ${fallback})`;
}

const INSERT_SELECTION = insertSelection({
  ixId: sql`v.ix_id`,
  clientId: sql`v.client_id`,
  requestId: sql`v.request_id`,
  request: sql`v.request`,
  callbackUrl: sql`v.callback_url`,
  priority: sql`v.priority`,
  runAt: orDefault("runAt", sql`v.run_at`),
  maxAttempts: sql`v.max_attempts`,
  submittedRunAt: sql`v.run_at`,
  submittedMaxAttempts: sql`v.max_attempts`,
  useCase: sql`v.use_case`,
  fairTag: sql`v.fair_tag`,
  traceparent: sql`v.traceparent`,
  tracestate: sql`v.tracestate`,
});

/** A schema default as SQL text, so defaults add no parameters to the statement. */
function literal(value: unknown): string {
  if (value === undefined || value === null) return "null";
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  throw new TypeError(`no SQL literal for a column default of type ${typeof value}`);
}

/**
 * The batch insert: one `insert … select from unnest(…) on conflict do nothing
 * returning …, pg_notify(…)`. One array parameter per column rather than a
 * VALUES row per item, so the statement's text and parameters are the same at
 * any batch size and nothing is built per row; `with ordinality … order by`
 * keeps key order. Built once per executor and run as a prepared statement, so
 * Drizzle's query building, costly on the API's hot path (BENCHMARKS.md), is
 * not paid per batch.
 */
function prepareInsert(db: Executor) {
  const items = sql`(select ix_id, client_id, request_id, request, callback_url, ${orDefault("priority", sql`priority`)} as priority,
      run_at, max_attempts, use_case, traceparent, tracestate, n, run_at is null or run_at <= now() as due
    from unnest(
      ${sql.placeholder("ixIds")}::text[],
      ${sql.placeholder("clientIds")}::text[],
      ${sql.placeholder("requestIds")}::text[],
      ${sql.placeholder("requests")}::jsonb[],
      ${sql.placeholder("callbackUrls")}::text[],
      ${sql.placeholder("priorities")}::int[],
      ${sql.placeholder("runAts")}::timestamptz[],
      ${sql.placeholder("maxAttempts")}::int[],
      ${sql.placeholder("useCases")}::text[],
      ${sql.placeholder("traceparents")}::text[],
      ${sql.placeholder("tracestates")}::text[]
    ) with ordinality as i(ix_id, client_id, request_id, request, callback_url, priority, run_at, max_attempts, use_case, traceparent, tracestate, n)) as i`;
  return db
    .insert(ixJobs)
    .select((qb) => qb.select(INSERT_SELECTION).from(sql`${withTurns(items)} as v`).orderBy(sql`v.n`))
    .onConflictDoNothing({ target: [ixJobs.clientId, ixJobs.requestId] })
    .returning({ ...jobColumns, notified: sql`pg_notify(${PENDING_CHANNEL}, '')` })
    .prepare("ix_insert_pending");
}

const prepared = new WeakMap<Executor, ReturnType<typeof prepareInsert>>();

function insertStatement(db: Executor): ReturnType<typeof prepareInsert> {
  let statement = prepared.get(db);
  if (!statement) {
    statement = prepareInsert(db);
    prepared.set(db, statement);
  }
  return statement;
}

/**
 * A key conflicted on insert, but its row was gone when re-read (pruned in
 * between) and was taken again by each retry. Carries SQLSTATE 40001
 * (serialization_failure), which callers treat as "retry": the same
 * submission a moment later settles normally.
 */
export class ConflictingRowGoneError extends Error {
  readonly code = "40001";
  constructor(clientId: string, requestId: string, rounds: number) {
    super(`job (${clientId}, ${requestId}) conflicted on insert but its row was gone when re-read, ${rounds} times (pruned concurrently?)`);
    this.name = "ConflictingRowGoneError";
  }
}

/** Inserts of a key whose conflicting row vanished before its re-read; each round is one insert statement. */
const MAX_ROUNDS = 3;

type Value = {
  ixId: string;
  clientId: string;
  requestId: string;
  request: RequestIX;
  callbackUrl: string | null;
  priority: number | null;
  runAtIso: string | null;
  maxAttempts: number | null;
  trace: TraceContext | null;
};

/**
 * `insertPending` for many submissions: one insert statement per batch
 * (above), then, only if some keys already existed, one re-select of those
 * rows. Each item is settled on its own, in input order, as with
 * `Promise.allSettled`: an item whose row the insert created is fulfilled even
 * if the re-read for the others then fails (its row is committed, so refusing
 * it would tell a client "retry" about a job that exists). A key whose
 * conflicting row was deleted between the insert and the re-read (a
 * concurrent prune) is free again and is inserted again, up to MAX_ROUNDS
 * times, then refused with ConflictingRowGoneError.
 *
 * Batching exists because NOTIFY serialises commits (PostgreSQL holds a
 * database-wide lock from PreCommit_Notify until the commit record is
 * flushed), so one transaction per submission cannot share a WAL flush; one
 * statement per batch pays one flush, and PostgreSQL collapses the identical
 * notifications of a transaction, so a batch wakes workers once.
 *
 * Within a batch the first item of a key wins, as if the items had been
 * inserted one after another: later items of that key get `created: false`
 * and the first's row (or the first's error). They are dropped before the
 * statement (ON CONFLICT DO NOTHING would skip them too, but the first's row
 * could not be re-read in the same statement).
 *
 * In a caller's transaction a failed statement aborts that transaction: its
 * fulfilled items stand only if the caller commits.
 */
export async function insertPendingManySettled(
  db: Executor,
  items: readonly InsertPendingParams[],
): Promise<Array<PromiseSettledResult<InsertPendingResult>>> {
  assertValidSubmissions(items);
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
  const values: Value[] = firsts.map(({ request, callbackUrl = null, priority = null, runAt = null, maxAttempts = null, trace = null }) => {
    const ixId = newIxId();
    // A client's own ix_id is ignored: ix assigns it.
    const stored: RequestIX = { ...request, ix_id: ixId };
    const runAtIso = runAt === null ? null : new Date(runAt).toISOString();
    return { ixId, clientId: request.ix_client_id, requestId: request.request_id, request: stored, callbackUrl, priority, runAtIso, maxAttempts, trace };
  });

  const settled = new Map<string, PromiseSettledResult<InsertPendingResult>>();
  const keyOf = (v: Value) => correlationKey(v.clientId, v.requestId);
  const fail = (of: Value[], reason: unknown) => {
    for (const v of of) settled.set(keyOf(v), { status: "rejected", reason });
  };
  let pending = values;
  for (let round = 1; pending.length > 0; round++) {
    if (round > MAX_ROUNDS) {
      for (const v of pending) settled.set(keyOf(v), { status: "rejected", reason: new ConflictingRowGoneError(v.clientId, v.requestId, MAX_ROUNDS) });
      break;
    }
    let inserted: Awaited<ReturnType<ReturnType<typeof insertStatement>["execute"]>>;
    try {
      inserted = await insertStatement(db).execute({
        ixIds: pending.map((v) => v.ixId),
        clientIds: pending.map((v) => v.clientId),
        requestIds: pending.map((v) => v.requestId),
        requests: pending.map((v) => JSON.stringify(v.request)),
        callbackUrls: pending.map((v) => v.callbackUrl),
        priorities: pending.map((v) => v.priority),
        runAts: pending.map((v) => v.runAtIso),
        maxAttempts: pending.map((v) => v.maxAttempts),
        useCases: pending.map((v) => v.request.use_case),
        traceparents: pending.map((v) => v.trace?.traceparent ?? null),
        tracestates: pending.map((v) => v.trace?.tracestate ?? null),
      });
    } catch (error) {
      // One statement: it stored none of these rows.
      fail(pending, error);
      break;
    }
    for (const { notified: _, ...row } of inserted) {
      settled.set(correlationKey(row.clientId, row.requestId), { status: "fulfilled", value: { job: toJob(row), created: true, submitted: submittedSchedule(row) } });
    }
    const conflicted = pending.filter((v) => !settled.has(keyOf(v)));
    if (conflicted.length === 0) break;
    try {
      // The conflicting rows are committed (ON CONFLICT waited for them), so this
      // statement's fresh snapshot sees them, unless they were deleted since.
      const existing = await db
        .select()
        .from(ixJobs)
        .where(
          sql`(${ixJobs.clientId}, ${ixJobs.requestId}) in (select * from unnest(${sql.param(conflicted.map((v) => v.clientId))}::text[], ${sql.param(conflicted.map((v) => v.requestId))}::text[]))`,
        );
      for (const row of existing) {
        settled.set(correlationKey(row.clientId, row.requestId), { status: "fulfilled", value: { job: toJob(row), created: false, submitted: submittedSchedule(row) } });
      }
    } catch (error) {
      fail(conflicted, error);
      break;
    }
    pending = conflicted.filter((v) => !settled.has(keyOf(v)));
  }

  return keys.map((key, index) => {
    const result = settled.get(key);
    if (!result) throw new Error(`insertPendingManySettled left ${key} unsettled`);
    if (firstOfKey.get(key) === index || result.status === "rejected") return result;
    return { status: "fulfilled", value: { ...result.value, created: false } };
  });
}

/**
 * `insertPendingManySettled` for callers that take a batch as a whole: the
 * results in input order, or the first item's error if any item failed (items
 * whose rows were created are then stored nonetheless).
 */
export async function insertPendingMany(
  db: Executor,
  items: readonly InsertPendingParams[],
): Promise<InsertPendingResult[]> {
  const settled = await insertPendingManySettled(db, items);
  return settled.map((result) => {
    if (result.status === "rejected") throw result.reason;
    return result.value;
  });
}
