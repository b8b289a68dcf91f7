import type { Job, JobStatus } from "@ix/client";
import { clientFor } from "../client.ts";
import type { CliEnv } from "../env.ts";

export interface JobsOptions {
  client?: string;
  status?: JobStatus;
  limit: number;
  format?: "json" | "table";
}

/** The most jobs one page (one request) of GET /jobs holds. */
const MAX_PAGE = 200;

const COLUMNS: Array<[string, (job: Job) => string]> = [
  ["JOB_ID", (job) => job.job_id],
  ["CLIENT", (job) => job.client_id],
  ["STATUS", (job) => job.status],
  ["USE_CASE", (job) => job.request.use_case],
  ["REQUEST_ID", (job) => job.request_id],
  ["CREATED_AT", (job) => job.created_at],
  ["FINISHED_AT", (job) => job.finished_at ?? "-"],
];

function table(jobs: Job[]): string {
  const rows = [COLUMNS.map(([title]) => title), ...jobs.map((job) => COLUMNS.map(([, cell]) => cell(job)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n");
}

/**
 * `ix jobs`: jobs newest first, reading pages of GET /jobs until --limit jobs
 * are printed or none are left. JSON Lines (one job a line) for scripts, a
 * table for a person at a terminal. Without --client: a client key's own jobs,
 * or every client's with an admin key (IX_ADMIN_KEYS) or against an API without keys.
 */
export async function listJobs(env: CliEnv, options: JobsOptions): Promise<void> {
  const format = options.format ?? (process.stdout.isTTY ? "table" : "json");
  const listing = clientFor(env).list({
    ...(options.client === undefined ? {} : { clientId: options.client }),
    ...(options.status === undefined ? {} : { status: options.status }),
    pageSize: Math.min(options.limit, MAX_PAGE),
  });
  const shown: Job[] = [];
  let more = false;
  for await (const page of listing) {
    for (const job of page.items) {
      if (shown.length === options.limit) {
        more = true;
        break;
      }
      shown.push(job);
      if (format === "json") console.log(JSON.stringify(job));
    }
    // Stop before asking for a page nobody will see; whether one exists is known from this page.
    if (shown.length === options.limit) {
      more ||= page.next_cursor !== null;
      break;
    }
  }
  if (format === "table") console.log(table(shown));
  const what = `${shown.length === 1 ? "job" : "jobs"}${options.status === undefined ? "" : ` with status ${options.status}`}`;
  console.error(`${shown.length} ${what}${more ? ` (the newest ${options.limit}; there are more: raise --limit)` : ""}`);
}
