import { Job } from "@ix/contracts";
import { sql, type SQL } from "drizzle-orm";
import type { JobRow } from "../schema";

/** The database's clock, or an explicit instant for tests: every time a repo function writes or compares comes from here. */
export function clock(now: Date | undefined): SQL {
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

