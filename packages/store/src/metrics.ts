import type { JobStatus } from "@ix/contracts";
import { sql } from "drizzle-orm";
import type { Executor } from "./db.ts";
import { clock } from "./jobs/row.ts";
import { ixJobs, ixWorkers } from "./schema.ts";

// What the API's GET /metrics reads from the database (docs/OPERATIONS.md, "Metrics"). Each query is
// chosen for its cost at a large table; BENCHMARKS.md ("Metrics at 1M rows") has the figures.

export interface StatusCount {
  status: JobStatus;
  useCase: string;
  count: number;
}

export interface LiveJobCounts {
  /** Pending (all of them, due or not) and running jobs. */
  counts: StatusCount[];
  /** Of the pending jobs, those whose run_at is still ahead: not claimable yet. */
  scheduled: Array<{ useCase: string; count: number }>;
}

/**
 * Jobs waiting and running, by use_case: read from the partial indexes the
 * claim and the rescuer already keep (claim, scheduled, running queue), so the
 * cost grows with the queue, not with the finished rows the table holds.
 */
export async function liveJobCounts(db: Executor, { now }: { now?: Date } = {}): Promise<LiveJobCounts> {
  const at = clock(now);
  const { rows } = await db.execute<{ kind: "due" | "waiting" | "running"; use_case: string; count: string; later: string }>(sql`
    select 'due' as kind, use_case, count(*) as count, 0 as later
      from ${ixJobs} where status = 'pending' and fair_tag is not null group by use_case
    union all
    select 'waiting', use_case, count(*), count(*) filter (where run_at > ${at})
      from ${ixJobs} where status = 'pending' and fair_tag is null group by use_case
    union all
    select 'running', use_case, count(*), 0 from ${ixJobs} where status = 'running' group by use_case`);
  const pending = new Map<string, number>();
  const scheduled = new Map<string, number>();
  const counts: StatusCount[] = [];
  for (const row of rows) {
    if (row.kind === "running") counts.push({ status: "running", useCase: row.use_case, count: Number(row.count) });
    else pending.set(row.use_case, (pending.get(row.use_case) ?? 0) + Number(row.count));
    if (row.kind === "waiting") scheduled.set(row.use_case, Number(row.later));
  }
  for (const [useCase, count] of pending) counts.push({ status: "pending", useCase, count });
  return { counts, scheduled: [...scheduled].map(([useCase, count]) => ({ useCase, count })) };
}

/**
 * Finished jobs still stored (done, error, cancelled), by use_case. No index
 * serves this: it reads the whole table (a parallel sequential scan), so the
 * API refreshes it far less often than the live counts.
 */
export async function finishedJobCounts(db: Executor): Promise<StatusCount[]> {
  const { rows } = await db.execute<{ status: JobStatus; use_case: string; count: string }>(sql`
    select status, use_case, count(*) as count from ${ixJobs}
    where status in ('done', 'error', 'cancelled') group by status, use_case`);
  return rows.map((row) => ({ status: row.status, useCase: row.use_case, count: Number(row.count) }));
}

export interface CallbackBacklog {
  /** Deliveries due now (including ones leased to a worker right now, whose lease is their next attempt time). */
  due: number;
  /** How long the oldest due delivery has waited, in seconds; 0 when none is due. */
  oldestDueSeconds: number;
}

/** Callback deliveries due, from the callback index (an index-only scan). */
export async function callbackBacklog(db: Executor, { now }: { now?: Date } = {}): Promise<CallbackBacklog> {
  const at = clock(now);
  const { rows } = await db.execute<{ due: string; oldest: number | null }>(sql`
    select count(*) as due, extract(epoch from ${at} - min(${ixJobs.callbackNextAttemptAt}))::float8 as oldest
    from ${ixJobs}
    where ${ixJobs.callbackNextAttemptAt} is not null and ${ixJobs.callbackNextAttemptAt} <= ${at}`);
  const row = rows[0];
  return { due: Number(row?.due ?? 0), oldestDueSeconds: Math.max(0, row?.oldest ?? 0) };
}

export interface UseCaseWorkers {
  useCase: string;
  /** Workers serving it seen within the live horizon. */
  live: number;
  /** Seconds since any worker serving it was last seen. */
  lastSeenSeconds: number;
}

/**
 * Per use_case served by a worker seen within `withinDays` (the registry's
 * window): how many are live (seen within `liveSeconds`) and how long since
 * one was last seen. A worker refreshes its row with every lease renewal.
 */
export async function workersByUseCase(
  db: Executor,
  { liveSeconds, withinDays, now }: { liveSeconds: number; withinDays: number; now?: Date },
): Promise<UseCaseWorkers[]> {
  const at = clock(now);
  const { rows } = await db.execute<{ use_case: string; live: string; last_seen: number }>(sql`
    select u as use_case,
      count(*) filter (where ${ixWorkers.lastSeenAt} > ${at} - make_interval(secs => ${liveSeconds}::float8)) as live,
      greatest(extract(epoch from ${at} - max(${ixWorkers.lastSeenAt})), 0)::float8 as last_seen
    from ${ixWorkers}, unnest(${ixWorkers.useCases}) as u
    where ${ixWorkers.lastSeenAt} > ${at} - make_interval(days => ${withinDays}::int)
    group by u order by u`);
  return rows.map((row) => ({ useCase: row.use_case, live: Number(row.live), lastSeenSeconds: row.last_seen }));
}
