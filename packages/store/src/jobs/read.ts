import type { Job } from "@ix/contracts";
import { and, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "../db.ts";
import { sqlState } from "../errors.ts";
import { ixJobs, type JobRow } from "../schema.ts";
import { type OnUnreadableRow, readJobRow } from "./row.ts";

export interface ReadOptions {
  /** Told of each row skipped because it is not a valid Job; for the caller's log. */
  onUnreadable?: OnUnreadableRow;
}

/** A row as a Job, or null (reported) when it is not a valid one: one bad row must not fail a read. */
function readOrSkip(row: Parameters<typeof readJobRow>[0], options: ReadOptions): Job | null {
  const read = readJobRow(row);
  if (read.ok) return read.job;
  options.onUnreadable?.(read.unreadable, "skipped");
  return null;
}

const Uuid = z.uuid();

/**
 * One job, or null. A row that is not a valid Job (written past the repo's
 * validation) is null too, reported to `onUnreadable`: it cannot be served
 * under the Job contract, and it must not turn a read into an error.
 */
export async function get(db: Executor, jobId: string, options: ReadOptions = {}): Promise<Job | null> {
  // A malformed id cannot name a job; answering null keeps bad input from becoming a SQL error.
  if (!Uuid.safeParse(jobId).success) return null;
  const rows = await db.select().from(ixJobs).where(eq(ixJobs.jobId, jobId));
  return rows[0] ? readOrSkip(rows[0], options) : null;
}

/** The job of `(clientId, requestId)`, or null; an unreadable row as in `get`. */
export async function getByCorrelation(
  db: Executor,
  { clientId, requestId }: { clientId: string; requestId: string },
  options: ReadOptions = {},
): Promise<Job | null> {
  const rows = await db
    .select()
    .from(ixJobs)
    .where(and(eq(ixJobs.clientId, clientId), eq(ixJobs.requestId, requestId)));
  return rows[0] ? readOrSkip(rows[0], options) : null;
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
    // Not base64url JSON at all: as invalid as a cursor that decodes to the wrong shape.
    return null;
  }
}

export class InvalidCursorError extends Error {
  constructor(options?: ErrorOptions) {
    super("cursor is not one this API issued", options);
    this.name = "InvalidCursorError";
  }
}

export interface ListJobsParams extends ReadOptions {
  /** Whose jobs; absent: every client's (an operator's view). */
  clientId?: string;
  status?: Job["status"];
  useCase?: string;
  limit: number;
  cursor?: string;
}

/**
 * One page of jobs, newest first, by keyset on (created_at, job_id). The
 * cursor carries created_at at full microsecond precision, which a JS Date
 * would round away. A row that is not a valid Job is left out of the page
 * (reported to `onUnreadable`) and the cursor moves past it, so one bad row
 * never makes a listing fail; a page may then hold fewer than `limit` items.
 *
 * Both ways read `ix_jobs_client_created_idx` backwards. One client: its range. Every client: the index
 * is walked client by client (a skip scan of the distinct client_ids), each client's newest `limit + 1`
 * keys after the cursor are taken, and the newest of those win, so a page costs a few index probes per
 * client rather than a sort of the table. status and use_case filter those scans.
 */
export async function listJobs(db: Executor, params: ListJobsParams): Promise<{ items: Job[]; nextCursor: string | null }> {
  const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor);
  if (after === null) throw new InvalidCursorError();
  const filters = and(
    params.status ? eq(ixJobs.status, params.status) : undefined,
    params.useCase ? eq(ixJobs.useCase, params.useCase) : undefined,
    after ? sql`(${ixJobs.createdAt}, ${ixJobs.jobId}) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : undefined,
  );
  const badCursor = (error: unknown) => {
    // A forged cursor can decode yet hold an instant PostgreSQL rejects (data exception, class 22).
    if (after && sqlState(error)?.startsWith("22")) throw new InvalidCursorError({ cause: error });
    throw error;
  };
  const columns = { ...getTableColumns(ixJobs), createdAtText: sql<string>`${ixJobs.createdAt}::text` };
  const newestFirst = sql`${ixJobs.createdAt} desc, ${ixJobs.jobId} desc`;
  let rows: Array<JobRow & { createdAtText: string }>;
  if (params.clientId !== undefined || params.status === "error") {
    // A client's range of ix_jobs_client_created_idx, or the failed rows of ix_jobs_failed_idx.
    rows = await db
      .select(columns)
      .from(ixJobs)
      .where(and(params.clientId === undefined ? undefined : eq(ixJobs.clientId, params.clientId), filters))
      .orderBy(newestFirst)
      .limit(params.limit + 1)
      .catch(badCursor);
  } else {
    const { rows: keys } = await db
      .execute<{ job_id: string }>(sql`
        with recursive clients(client_id) as (
          (select client_id from ${ixJobs} order by client_id limit 1)
          union all
          select (select j.client_id from ${ixJobs} j where j.client_id > c.client_id order by j.client_id limit 1)
          from clients c where c.client_id is not null
        )
        select page.job_id from clients c cross join lateral (
          select ${ixJobs.jobId}, ${ixJobs.createdAt} from ${ixJobs}
          where ${ixJobs.clientId} = c.client_id ${filters ? sql`and ${filters}` : sql``}
          order by ${newestFirst} limit ${params.limit + 1}
        ) page
        where c.client_id is not null
        order by page.created_at desc, page.job_id desc limit ${params.limit + 1}`)
      .catch(badCursor);
    const found = keys.length === 0 ? [] : await db.select(columns).from(ixJobs).where(inArray(ixJobs.jobId, keys.map((k) => k.job_id))).orderBy(newestFirst);
    rows = found;
  }
  const page = rows.slice(0, params.limit);
  const last = page.at(-1);
  return {
    items: page.flatMap(({ createdAtText: _, ...row }) => readOrSkip(row, params) ?? []),
    nextCursor: rows.length > params.limit && last ? encodeCursor(last.createdAtText, last.jobId) : null,
  };
}

/** A job with what the Job contract leaves out and an operator needs: its callback delivery and run lease. */
export interface JobInspection {
  job: Job;
  callback: { attempts: number; nextAttemptAt: Date | null; lastError: string | null };
  leaseExpiresAt: Date | null;
  cancelRequestedBy: "client" | "operator" | null;
}

/** One job for the dashboard's detail page, or null (as `get`: missing, malformed id, or not a valid Job). */
export async function inspect(db: Executor, jobId: string, options: ReadOptions = {}): Promise<JobInspection | null> {
  if (!Uuid.safeParse(jobId).success) return null;
  const [row] = await db.select().from(ixJobs).where(eq(ixJobs.jobId, jobId));
  const job = row ? readOrSkip(row, options) : null;
  if (!row || !job) return null;
  return {
    job,
    callback: { attempts: row.callbackAttempts, nextAttemptAt: row.callbackNextAttemptAt, lastError: row.callbackLastError },
    leaseExpiresAt: row.leaseExpiresAt,
    cancelRequestedBy: row.cancelRequestedBy,
  };
}
