import { type Executor, sql } from "@ix/store";

/**
 * The side table the crash and freeze faults use to see every pipeline run
 * from outside the worker: which process ran which attempt of which job, and
 * whether the run reached its end. ix itself knows nothing of it.
 */
export async function createRunsTable(db: Executor): Promise<void> {
  await db.execute(sql`
    create table fault_runs (
      run_id bigserial primary key,
      job_id uuid not null,
      attempt int not null,
      pid int not null,
      started_at timestamptz not null default now(),
      finished_at timestamptz
    )`);
}

/**
 * Records the start of a run of the job `(clientId, requestId)` by this
 * process. `attempt` is the job's `attempts` as this claim left it (0 for the
 * first run), read in the same statement, so it is the claim's own fence value.
 */
export async function recordRunStart(db: Executor, { clientId, requestId, pid }: { clientId: string; requestId: string; pid: number }) {
  const result = await db.execute<{ run_id: string; attempt: number }>(sql`
    insert into fault_runs (job_id, attempt, pid)
    select job_id, attempts, ${pid}::int from ix_jobs
    where client_id = ${clientId} and request_id = ${requestId} and status = 'running'
    returning run_id, attempt`);
  const row = result.rows[0];
  if (!row) throw new Error(`job (${clientId}, ${requestId}) is not running, yet its pipeline runs`);
  return { runId: row.run_id, attempt: row.attempt };
}

export async function recordRunEnd(db: Executor, runId: string): Promise<void> {
  await db.execute(sql`update fault_runs set finished_at = now() where run_id = ${runId}::bigint`);
}

export interface RunRow {
  jobId: string;
  attempt: number;
  pid: number;
  finished: boolean;
}

export async function listRuns(db: Executor): Promise<RunRow[]> {
  const result = await db.execute<{ job_id: string; attempt: number; pid: number; finished: boolean }>(
    sql`select job_id, attempt, pid, finished_at is not null as finished from fault_runs order by job_id, attempt, run_id`,
  );
  return result.rows.map((r) => ({ jobId: r.job_id, attempt: r.attempt, pid: r.pid, finished: r.finished }));
}
