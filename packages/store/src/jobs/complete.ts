import { ResponseIX } from "@ix/contracts";
import { sql } from "drizzle-orm";
import type { Executor } from "../db";
import { completionStatus } from "../lifecycle";

export interface Completion {
  jobId: string;
  /** The `attempts` value the claimer saw: the fence. */
  attempts: number;
  response: ResponseIX;
}

/**
 * Finishes many running jobs in one fenced statement, `done` or `error` as
 * `completionStatus` decides from each response. A row changes only while it
 * is still `running` with the attempts its claimer saw, so a worker presumed
 * dead cannot overwrite the run that replaced it. A finished job with a
 * callback_url becomes due for delivery. Returns the ids that applied.
 */
export async function completeMany(db: Executor, completions: readonly Completion[]): Promise<string[]> {
  if (completions.length === 0) return [];
  const ids: string[] = [];
  const attempts: number[] = [];
  const statuses: string[] = [];
  const responses: string[] = [];
  for (const c of completions) {
    const response = ResponseIX.parse(c.response);
    ids.push(c.jobId);
    attempts.push(c.attempts);
    statuses.push(completionStatus(response));
    responses.push(JSON.stringify(response));
  }
  const result = await db.execute<{ job_id: string }>(sql`
    update ix_jobs as j set
      status = c.status,
      response = c.response,
      finished_at = now(),
      callback_next_attempt_at = case when j.callback_url is not null then now() end
    from unnest(${sql.param(ids)}::uuid[], ${sql.param(attempts)}::int[], ${sql.param(statuses)}::text[], ${sql.param(responses)}::jsonb[])
      as c(job_id, attempts, status, response)
    where j.job_id = c.job_id and j.status = 'running' and j.attempts = c.attempts
    returning j.job_id`);
  return result.rows.map((r) => r.job_id);
}
