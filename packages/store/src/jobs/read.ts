import type { Job } from "@ix/contracts";
import { and, eq, getTableColumns, sql } from "drizzle-orm";
import { z } from "zod";
import type { Executor } from "../db.ts";
import { sqlState } from "../errors.ts";
import { ixJobs } from "../schema.ts";
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

/**
 * One page of a client's jobs, newest first, by keyset on (created_at, job_id).
 * The cursor carries created_at at full microsecond precision, which a JS Date
 * would round away. A row that is not a valid Job is left out of the page
 * (reported to `onUnreadable`) and the cursor moves past it, so one bad row
 * never makes a client's listing fail; a page may then hold fewer than `limit` items.
 */
export async function listJobs(
  db: Executor,
  params: { clientId: string; status?: Job["status"]; limit: number; cursor?: string } & ReadOptions,
): Promise<{ items: Job[]; nextCursor: string | null }> {
  const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor);
  if (after === null) throw new InvalidCursorError();
  const rows = await db
    .select({ ...getTableColumns(ixJobs), createdAtText: sql<string>`${ixJobs.createdAt}::text` })
    .from(ixJobs)
    .where(
      and(
        eq(ixJobs.clientId, params.clientId),
        params.status ? eq(ixJobs.status, params.status) : undefined,
        after ? sql`(${ixJobs.createdAt}, ${ixJobs.jobId}) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : undefined,
      ),
    )
    .orderBy(sql`${ixJobs.createdAt} desc, ${ixJobs.jobId} desc`)
    .limit(params.limit + 1)
    .catch((error: unknown) => {
      // A forged cursor can decode yet hold an instant PostgreSQL rejects (data exception, class 22).
      if (after && sqlState(error)?.startsWith("22")) throw new InvalidCursorError({ cause: error });
      throw error;
    });
  const page = rows.slice(0, params.limit);
  const last = page.at(-1);
  return {
    items: page.flatMap(({ createdAtText: _, ...row }) => readOrSkip(row, params) ?? []),
    nextCursor: rows.length > params.limit && last ? encodeCursor(last.createdAtText, last.jobId) : null,
  };
}
