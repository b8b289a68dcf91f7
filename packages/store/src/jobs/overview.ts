import type { JobStatus } from "@ix/contracts";
import { sql } from "drizzle-orm";
import type { Executor } from "../db.ts";
import { ixJobs } from "../schema.ts";
import { clock } from "./row.ts";

/** How far back the overview looks at finished jobs: the charts' span, and the bound on what it reads. */
export const OVERVIEW_WINDOW_MINUTES = 60;

export interface QueueOverview {
  /** The database's now, which the minutes count back from. */
  at: Date;
  /** pending and running: every such job now; done, error, cancelled: those that finished within the window. */
  counts: Array<{ useCase: string; status: JobStatus; count: number }>;
  /**
   * One entry per minute of the window, oldest first, every minute present: jobs that finished in it, and
   * the wait of their last run (run_at → started_at) at the median and the 95th percentile, in ms (null:
   * no run finished then, e.g. only jobs cancelled while pending).
   */
  minutes: Array<{ minute: Date; finished: number; waitP50Ms: number | null; waitP95Ms: number | null }>;
}

/**
 * The dashboard's overview, in two statements whose cost is bounded by what is live and by the window,
 * never by the table's history: live counts read the partial indexes of pending and running rows
 * (`ix_jobs_claim_idx`, `ix_jobs_scheduled_idx`, `ix_jobs_running_queue_idx`), finished jobs the
 * `ix_jobs_finished_idx` range of the last OVERVIEW_WINDOW_MINUTES, grouped both by (use_case, status)
 * and by minute in one scan (grouping sets). docs/ARCHITECTURE.md, "Dashboard", has the plans.
 */
export async function queueOverview(db: Executor, { now }: { now?: Date } = {}): Promise<QueueOverview> {
  const at = clock(now);
  const live = await db.execute<{ use_case: string; status: "pending" | "running"; n: number }>(sql`
    select use_case, 'pending' as status, count(*)::int as n from ${ixJobs} where status = 'pending' and fair_tag is not null group by use_case
    union all
    select use_case, 'pending', count(*)::int from ${ixJobs} where status = 'pending' and fair_tag is null group by use_case
    union all
    select use_case, 'running', count(*)::int from ${ixJobs} where status = 'running' group by use_case`);
  const recent = await db.execute<{
    now_ms: number;
    use_case: string | null;
    status: JobStatus | null;
    minute_ms: number | null;
    n: number;
    p50: number | null;
    p95: number | null;
  }>(sql`
    with finished as (
      select use_case, status, date_trunc('minute', finished_at) as minute,
             extract(epoch from started_at - run_at) * 1000 as wait_ms
      from ${ixJobs}
      where finished_at is not null and finished_at > ${at} - make_interval(mins => ${OVERVIEW_WINDOW_MINUTES}::int) and finished_at <= ${at}
    )
    select extract(epoch from ${at})::float8 * 1000 as now_ms, use_case, status,
           extract(epoch from minute)::float8 * 1000 as minute_ms, count(*)::int as n,
           percentile_cont(0.5) within group (order by wait_ms) as p50,
           percentile_cont(0.95) within group (order by wait_ms) as p95
    from finished group by grouping sets ((use_case, status), (minute), ())`);
  // The empty grouping set always yields a row, and with it the database's now.
  const total = recent.rows.find((r) => r.use_case === null && r.minute_ms === null);
  if (!total) throw new Error("the overview's total row is missing");
  const atDate = new Date(total.now_ms);
  const counts = new Map<string, { useCase: string; status: JobStatus; count: number }>();
  const add = (useCase: string, status: JobStatus, count: number) => {
    const key = `${useCase}\n${status}`;
    const entry = counts.get(key) ?? { useCase, status, count: 0 };
    entry.count += count;
    counts.set(key, entry);
  };
  for (const row of live.rows) add(row.use_case, row.status, row.n);
  const byMinute = new Map<number, { finished: number; waitP50Ms: number | null; waitP95Ms: number | null }>();
  for (const row of recent.rows) {
    if (row.use_case !== null && row.status !== null) add(row.use_case, row.status, row.n);
    else if (row.minute_ms !== null) {
      byMinute.set(row.minute_ms, { finished: row.n, waitP50Ms: row.p50, waitP95Ms: row.p95 });
    }
  }
  const lastMinute = Math.floor(atDate.getTime() / 60_000) * 60_000;
  const minutes: QueueOverview["minutes"] = [];
  for (let i = OVERVIEW_WINDOW_MINUTES - 1; i >= 0; i--) {
    const minute = lastMinute - i * 60_000;
    minutes.push({ minute: new Date(minute), ...(byMinute.get(minute) ?? { finished: 0, waitP50Ms: null, waitP95Ms: null }) });
  }
  return {
    at: atDate,
    counts: [...counts.values()].sort((a, b) => a.useCase.localeCompare(b.useCase) || a.status.localeCompare(b.status)),
    minutes,
  };
}
