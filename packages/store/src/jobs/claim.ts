import { type Job, ResponseIX, type TraceContext } from "@ix/contracts";
import { createHash } from "node:crypto";
import { and, asc, fillPlaceholders, getTableColumns, isNotNull, isNull, lte, type Query, type SQL, sql } from "drizzle-orm";
import { PgDialect, QueryBuilder } from "drizzle-orm/pg-core";
import type { Executor } from "../db.ts";
import { assertLeaseSeconds, DEFAULT_LEASE_SECONDS, errorEntryText, unrunnableResponse } from "../lifecycle.ts";
import { ixJobs, type JobRow } from "../schema.ts";
import { applyRows } from "./complete.ts";
import { withTurns } from "./fair-share.ts";
import { PENDING_CHANNEL } from "./insert.ts";
import { type OnUnreadableRow, readJobRow, traceContextOf, type UnreadableRow } from "./row.ts";

export interface ClaimParams {
  limit: number;
  /**
   * How long the claimed runs are leased (IX_LEASE_SECONDS): the claimer must
   * renew them (`renewLeases`) before then, or the rescuer takes them back.
   * Default `lifecycle.DEFAULT_LEASE_SECONDS`.
   */
  leaseSeconds?: number;
  /**
   * The use_cases this claimer runs: only their jobs are claimed. Absent: every
   * use_case that has pending jobs (tools and tests; a worker names its own).
   */
  useCases?: readonly string[];
  /**
   * Caps on running jobs per use_case across all claimers (IX_USE_CASE_CONCURRENCY),
   * e.g. `{ ocr: 4 }`. Every claimer must be given the same caps.
   */
  useCaseConcurrency?: Readonly<Record<string, number>>;
  /** Told of each claimed row that is not a valid Job; the claim ends it `error` instead of returning it. */
  onUnreadable?: OnUnreadableRow;
  /** The instant that counts as now (which jobs are due, started_at, the lease); default the database's now(). */
  now?: Date;
}

/** Namespace of the per-use_case advisory locks that serialise claimers of one capped use_case. */
const CAP_LOCK_CLASS = 0x1c_ca9;

/**
 * Claims up to `limit` due pending jobs (`run_at <= now`) of the claimer's
 * use_cases, in claim order (docs/ARCHITECTURE.md, "Scheduling"): highest
 * priority first; within a priority, by turn (jobs/fair-share.ts), so clients
 * alternate and each client's jobs go oldest first; across the claimer's
 * use_cases, queue heads alternate. One statement: each use_case's queue is
 * read from its own index range with FOR UPDATE SKIP LOCKED, so concurrent
 * claimers never get the same row and never wait on each other, and the chosen
 * rows are set running with a lease of `leaseSeconds`.
 *
 * A use_case with a concurrency cap is claimed under a transaction-scoped
 * advisory lock of that use_case alone, taken in a statement before the claim:
 * the claim's snapshot then sees every committed run of that use_case, so
 * claimers of one capped use_case cannot both take its last slot, while
 * claimers of other use_cases never wait.
 *
 * The claim commits durably: a claim a server crash forgot would let a second
 * worker run the job while the first run's completion still passes the fence
 * (BENCHMARKS.md records the faster non-durable variant that was reverted).
 */
export async function claimPending(db: Executor, params: ClaimParams): Promise<Job[]> {
  return (await claimPendingRuns(db, params)).map((run) => run.job);
}

/** A claimed job and what its run needs besides the Job contract. */
export interface ClaimedRun {
  job: Job;
  /** The submitter's trace context (`traceContextOf`), for the run's span; null when none was sent. */
  trace: TraceContext | null;
}

/** `claimPending`, each job with its trace context: what a worker claims with. */
export async function claimPendingRuns(db: Executor, params: ClaimParams): Promise<ClaimedRun[]> {
  const capped = bindingCaps(params).map(([name]) => name);
  const rows =
    capped.length === 0
      ? await claimPendingStatement(db, params).execute()
      : await db.transaction(async (tx) => {
          // One lock per capped use_case, in one order, so two claimers of overlapping sets cannot deadlock.
          await tx.execute(
            sql`select pg_advisory_xact_lock(${CAP_LOCK_CLASS}, hashtext(u)) from unnest(${sql.param(capped)}::text[]) as u order by u`,
          );
          return claimPendingStatement(tx, params).execute();
        });
  const claimed: ClaimedRun[] = [];
  const unreadable: Array<{ row: JobRow; unreadable: UnreadableRow }> = [];
  // Rows that only received their turn stay pending: not this claimer's.
  for (const row of rows.filter((r) => r.status === "running").sort(byClaimOrder)) {
    const read = readJobRow(row);
    if (read.ok) claimed.push({ job: read.job, trace: traceContextOf(row) });
    else unreadable.push({ row, unreadable: read.unreadable });
  }
  if (unreadable.length > 0) await endUnrunnable(db, unreadable, params.onUnreadable);
  return claimed;
}

/**
 * Ends claimed rows that are not valid Jobs `error`, fenced, with a response
 * saying why (`lifecycle.unrunnableResponse`): they can never run, and
 * returning them would fail the whole claim. The response is built from the
 * row's own identity; when that identity itself breaks the contract the
 * response cannot be a valid ResponseIX, and it is stored as built anyway,
 * since a finished row is better than one claimed again forever (reads skip
 * such rows). If this statement fails the rows stay `running`, and the rescuer
 * puts them back to be claimed and ended again.
 */
async function endUnrunnable(
  db: Executor,
  rows: Array<{ row: JobRow; unreadable: UnreadableRow }>,
  onUnreadable: OnUnreadableRow | undefined,
): Promise<void> {
  const finish = rows.map(({ row, unreadable }) => {
    const request = row.request as unknown;
    const useCase =
      typeof request === "object" && request !== null && typeof (request as { use_case?: unknown }).use_case === "string"
        ? (request as { use_case: string }).use_case
        : "unknown";
    const response = unrunnableResponse(
      { client_id: row.clientId, request_id: row.requestId, ix_id: row.ixId, request: { use_case: useCase } },
      { reason: unreadable.reason, startedAt: row.startedAt ?? row.createdAt, attempt: row.attempts + 1 },
    );
    const parsed = ResponseIX.safeParse(response);
    return {
      jobId: row.jobId,
      attempts: row.attempts,
      status: "error" as const,
      json: JSON.stringify(parsed.success ? parsed.data : response),
      errorText: errorEntryText(response.error ?? unreadable.reason),
    };
  });
  let ended: Set<string>;
  try {
    ended = new Set((await applyRows(db, finish)).map((run) => run.jobId));
  } catch {
    // Not thrown: the valid rows of this claim are running and must be returned to their claimer.
    ended = new Set();
  }
  for (const { unreadable } of rows) onUnreadable?.(unreadable, ended.has(unreadable.jobId) ? "ended error" : "left running");
}

/**
 * The caps that bind this claim, sorted by use_case: those of the use_cases it
 * may take jobs of (all of them when it names none). The one home of that rule:
 * claimPending locks these use_cases, and the claim statement counts room for
 * these alone.
 */
function bindingCaps({ useCases, useCaseConcurrency = {} }: ClaimParams): Array<[useCase: string, cap: number]> {
  const caps = Object.entries(useCaseConcurrency);
  for (const [name, cap] of caps) {
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`concurrency cap of use_case "${name}" must be a positive integer, got ${cap}`);
  }
  return caps.filter(([name]) => useCases === undefined || useCases.includes(name)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** How many jobs that became due one claim gives turns to; the next claim goes on with the rest. */
const DUE_BATCH = 1_000;

/**
 * The claim statement itself, unexecuted, so the benchmark and the plan test
 * can EXPLAIN exactly what `claimPending` runs: `.toSQL()` gives its text and
 * parameters. A capped use_case's room is counted here, so this statement must
 * run after its lock (claimPending does that).
 *
 * The text depends only on whether the claimer names its use_cases; every
 * value is a parameter. So the text is built once per shape and run as a named
 * prepared statement: building it costs more than running a small claim, and a
 * server connection plans it once instead of on every claim (BENCHMARKS.md,
 * "Issue 17 levers").
 */
export function claimPendingStatement(db: Executor, params: ClaimParams) {
  const { limit, leaseSeconds = DEFAULT_LEASE_SECONDS, useCases, now } = params;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`claim limit must be a positive integer, got ${limit}`);
  assertLeaseSeconds(leaseSeconds);
  const caps = bindingCaps(params);
  const statement = claimStatementFor(useCases === undefined ? "every" : "named");
  const values: ClaimValues = {
    limit,
    leaseSeconds,
    now: now ? now.toISOString() : null,
    useCases: useCases === undefined ? [] : [...new Set(useCases)],
    capNames: caps.map(([name]) => name),
    capValues: caps.map(([, cap]) => cap),
  };
  return {
    /** The statement's text and parameters, for EXPLAIN. */
    toSQL: () => ({ sql: statement.query.sql, params: fillPlaceholders(statement.query.params, { ...values }) }),
    /** Runs it: the rows it wrote, claimed (running) and only turned (pending) alike. */
    execute: async (): Promise<JobRow[]> => {
      const prepared = db._.session.prepareQuery(statement.query, undefined, statement.name, false);
      const result = (await prepared.execute({ ...values })) as { rows: Array<Record<string, unknown>> };
      return result.rows.map(jobRowFromDriver);
    },
  };
}

/** The claim's parameters, by placeholder name. */
interface ClaimValues {
  limit: number;
  leaseSeconds: number;
  /** ISO instant, or null for the database's now(). */
  now: string | null;
  useCases: string[];
  capNames: string[];
  capValues: number[];
}

type ClaimShape = "named" | "every";

const claimStatements = new Map<ClaimShape, { query: Query; name: string }>();

/** The claim statement of one shape, built on first use; named by a hash of its text, so a name never means two texts. */
function claimStatementFor(shape: ClaimShape): { query: Query; name: string } {
  let statement = claimStatements.get(shape);
  if (!statement) {
    const query = dialect.sqlToQuery(buildClaimStatement(shape));
    statement = { query, name: `ix_claim_${createHash("sha1").update(query.sql).digest("hex").slice(0, 12)}` };
    claimStatements.set(shape, statement);
  }
  return statement;
}

const placeholder = <K extends keyof ClaimValues>(name: K) => sql.placeholder(name);

/**
 * In order, inside one statement: jobs whose run_at has come get their turns
 * (`due`, `turned`); each of the claimer's queues is read from the claim index
 * (`next`), joined by the jobs just turned; the best `limit` within each
 * queue's room are chosen; the update sets those running and stores the turns.
 */
function buildClaimStatement(shape: ClaimShape): SQL {
  // The builder only builds SQL here; the statement runs on whichever executor claims.
  const db = queryBuilder;
  const limit = sql`${placeholder("limit")}::int`;
  const at = sql`coalesce(${placeholder("now")}::timestamptz, now())`;
  // A literal, not a parameter: a plan built without the parameters' values must still match the partial indexes' predicates.
  const pending = sql`${ixJobs.status} = 'pending'`;
  // Jobs waiting for their run_at that are now due, of any use_case: whichever claimer finds them gives them
  // their turns, so a use_case whose workers are busy still queues its due jobs in order.
  const waiting = db
    .select({ jobId: ixJobs.jobId, clientId: ixJobs.clientId, useCase: ixJobs.useCase, priority: ixJobs.priority, runAt: ixJobs.runAt })
    .from(ixJobs)
    .where(and(pending, isNull(ixJobs.fairTag), lte(ixJobs.runAt, at)))
    .orderBy(asc(ixJobs.runAt), asc(ixJobs.jobId))
    .limit(DUE_BATCH)
    .for("update", { skipLocked: true });
  const due = sql`(select w.*, true as due, row_number() over (order by w.run_at, w.job_id) as n from (${waiting}) as w) as due_rows`;
  // The claimer's queues: the use_cases it names, or every use_case with due jobs, found by skipping
  // through the claim index one use_case at a time.
  const names =
    shape === "every"
      ? sql`(with recursive uc(use_case) as (
            (select use_case from ix_jobs where status = 'pending' and fair_tag is not null order by use_case limit 1)
            union all
            select (select n.use_case from ix_jobs as n
                    where n.status = 'pending' and n.fair_tag is not null and n.use_case > uc.use_case order by n.use_case limit 1)
            from uc where uc.use_case is not null)
          select use_case from uc where use_case is not null
          union select use_case from turned)`
      : sql`(select unnest(${placeholder("useCases")}::text[]) as use_case)`;
  // How many jobs each queue may start: the claim's limit, or what its binding cap leaves.
  const queues = sql`(select names.use_case, case when caps.cap is null then ${limit}
        else greatest(caps.cap - (select count(*) from ix_jobs as r where r.status = 'running' and r.use_case = names.use_case), 0)::int
      end as room
    from ${names} as names
    left join unnest(${placeholder("capNames")}::text[], ${placeholder("capValues")}::int[]) as caps(use_case, cap)
      using (use_case))`;
  const next = db
    .select({ jobId: ixJobs.jobId, priority: ixJobs.priority, useCase: ixJobs.useCase, fairTag: ixJobs.fairTag })
    .from(ixJobs)
    .where(and(pending, isNotNull(ixJobs.fairTag), sql`${ixJobs.useCase} = q.use_case`, lte(ixJobs.runAt, at)))
    // `nulls last` as the index stores it: a plain `desc` (nulls first) cannot be read from the index in order.
    .orderBy(sql`${ixJobs.priority} desc nulls last`, asc(ixJobs.fairTag))
    .limit(placeholder("limit"))
    .for("update", { skipLocked: true });
  // The final `= any(array(…))` fetches each written row by primary key; a plain join to `writes` can be
  // planned as a scan of the whole table, whose cost grows with the finished rows (test/claim-plan.test.ts).
  return sql`
    with turned as (select job_id, use_case, priority, fair_tag from ${withTurns(due)} as t),
    q as ${queues},
    picked as (
      select p.job_id, p.use_case, p.priority, p.fair_tag from q cross join lateral (${next}) as p where q.room > 0
      union all
      select t.job_id, t.use_case, t.priority, t.fair_tag from turned as t join q using (use_case) where q.room > 0),
    chosen as (
      select job_id from (
        select picked.*, q.room,
          row_number() over (partition by picked.use_case order by picked.priority desc, picked.fair_tag) as in_queue,
          row_number() over (partition by picked.use_case, picked.priority order by picked.fair_tag) as at_priority
        from picked join q using (use_case)) as ranked
      where in_queue <= room
      order by priority desc, at_priority, fair_tag
      limit ${limit}),
    -- One row per job to write: chosen ones start, turned ones not chosen only store their turn (and wake
    -- idle workers, which found them locked while this statement turned them).
    writes as (
      select job_id, true as claim, null::bigint as fair_tag from chosen where job_id not in (select job_id from turned)
      union all
      select t.job_id, t.job_id in (select job_id from chosen), t.fair_tag from turned as t)
    update ix_jobs as j set
      status = case when x.claim then 'running' else j.status end,
      started_at = case when x.claim then ${at} else j.started_at end,
      lease_expires_at = case when x.claim then ${at} + make_interval(secs => ${placeholder("leaseSeconds")}::float8) else j.lease_expires_at end,
      fair_tag = coalesce(x.fair_tag, j.fair_tag)
    from writes as x
    where j.job_id = x.job_id and j.job_id = any(array(select job_id from writes))
    returning j.*, case when not x.claim then pg_notify(${PENDING_CHANNEL}, '') end as woke`;
}

const dialect = new PgDialect();
const queryBuilder = new QueryBuilder();
const jobColumns = Object.entries(getTableColumns(ixJobs));

/** A raw `returning *` row as Drizzle would map it (column names to keys, each column's own decoding). */
function jobRowFromDriver(raw: Record<string, unknown>): JobRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of jobColumns) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as JobRow;
}

/** Claim order, for the caller: priority, then turn. */
function byClaimOrder(a: JobRow, b: JobRow): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.fairTag !== b.fairTag) return (a.fairTag ?? 0) - (b.fairTag ?? 0);
  if (a.runAt.getTime() !== b.runAt.getTime()) return a.runAt.getTime() - b.runAt.getTime();
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}
