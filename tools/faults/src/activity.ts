import { type Executor, sql } from "@ix/store";

/**
 * Worker processes of this database that are LISTENing for pending jobs: each
 * worker holds exactly one such connection (its wake-up channel) once started,
 * so this counts ready workers without asking them.
 */
export async function listeningWorkers(db: Executor): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = 'ix-worker' and query ilike 'listen %'`);
  return result.rows[0]?.n ?? 0;
}

/** Workers in the registry: each registers before its first claim, and the API accepts only use_cases they serve. */
export async function registeredWorkers(db: Executor): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_workers`);
  return result.rows[0]?.n ?? 0;
}

/** Job counts by status. */
export async function statusCounts(db: Executor): Promise<Record<string, number>> {
  const result = await db.execute<{ status: string; n: number }>(sql`select status, count(*)::int as n from ix_jobs group by status`);
  return Object.fromEntries(result.rows.map((r) => [r.status, r.n]));
}

export async function terminalCount(db: Executor): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where status in ('done', 'error')`);
  return result.rows[0]?.n ?? 0;
}
