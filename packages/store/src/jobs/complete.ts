import { ResponseIX, ResponseMetadata } from "@ix/contracts";
import { sql } from "drizzle-orm";
import { PgTransaction } from "drizzle-orm/pg-core";
import type { Executor } from "../db";
import { isTransientDbError, sqlState } from "../errors";
import { completionStatus, unstorableResponse } from "../lifecycle";
import { maskQuoted } from "../log-safe-error";
import { describeIssues } from "./row";

export interface Completion {
  jobId: string;
  /** The `attempts` value the claimer saw: the fence. */
  attempts: number;
  response: ResponseIX;
}

/** A completion that could not be stored as given, and what became of its job. */
export interface UnstorableCompletion {
  jobId: string;
  /** Why, as the job's error response says it (no values of the response itself). */
  reason: string;
  /**
   * true: the job ended `error` with a response giving the reason. false: it
   * was left as it was, because it was no longer this run's (fenced out) or
   * even the error response could not be stored; a running job is then the rescuer's.
   */
  storedAsError: boolean;
}

export interface CompleteOptions {
  /** Told of each completion that could not be stored as given; for the caller's log. */
  onUnstorable?(failure: UnstorableCompletion): void;
}

/**
 * Serialised responses per statement, at most: a tick's completions are
 * chunked so that a few large results cannot make one statement too large to
 * send (PostgreSQL refuses any message over 1 GB) or to build in memory.
 */
const MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/** One row's part of the finishing statement: the fence, the status and the serialised response. */
export interface FinishRow {
  jobId: string;
  attempts: number;
  status: "done" | "error";
  json: string;
}

/** A completion ready for the statement. */
interface Row extends FinishRow {
  completion: Completion;
}

/**
 * Finishes many running jobs in one fenced statement, `done` or `error` as
 * `completionStatus` decides from each response. A row changes only while it
 * is still `running` with the attempts its claimer saw, so a worker presumed
 * dead cannot overwrite the run that replaced it. A finished job with a
 * callback_url becomes due for delivery. Returns the ids that applied.
 *
 * One job's response cannot cost its neighbours theirs: a response that breaks
 * the ResponseIX contract or is not JSON is never sent, and when the database
 * refuses the statement for a reason one row can cause (a NUL character, a
 * jsonb limit, a CHECK), the batch is split in halves, each in a savepoint,
 * until the offending completion is alone. That job ends `error` with a
 * response saying why (`lifecycle.unstorableResponse`), fenced like any
 * completion, and the others are stored. A transient error (the database is
 * away) is thrown as before, so the caller retries the whole batch.
 */
export async function completeMany(
  db: Executor,
  completions: readonly Completion[],
  options: CompleteOptions = {},
): Promise<string[]> {
  if (completions.length === 0) return [];
  const rows: Row[] = [];
  const invalid: Array<{ completion: Completion; reason: string }> = [];
  for (const completion of completions) {
    const prepared = prepare(completion);
    if ("reason" in prepared) invalid.push({ completion, reason: prepared.reason });
    else rows.push(prepared);
  }
  const chunks = chunkBySize(rows);
  if (invalid.length === 0 && chunks.length === 1) {
    // The common case: one statement, no transaction. On a caller's
    // transaction it runs in a savepoint, so a refusal leaves that transaction usable.
    try {
      return db instanceof PgTransaction ? await db.transaction((sp) => applyRows(sp, rows)) : await applyRows(db, rows);
    } catch (error) {
      if (!isRowAttributable(error)) throw error;
    }
  }
  return db.transaction(async (tx) => {
    const applied: string[] = [];
    for (const chunk of chunks) applied.push(...(await applySplitting(tx, chunk, options)));
    for (const { completion, reason } of invalid) {
      if (await storeAsError(tx, completion, reason, options)) applied.push(completion.jobId);
    }
    return applied;
  });
}

/** Validates and serialises one completion; a failure is that completion's alone. */
function prepare(completion: Completion): Row | { reason: string } {
  const parsed = ResponseIX.safeParse(completion.response);
  if (!parsed.success) return { reason: `it breaks the ResponseIX contract (${describeIssues(parsed.error)})` };
  let json: string;
  try {
    json = JSON.stringify(parsed.data);
  } catch (error) {
    return { reason: `its result is not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  return { completion, jobId: completion.jobId, attempts: completion.attempts, status: completionStatus(parsed.data), json };
}

function chunkBySize(rows: Row[]): Row[][] {
  const chunks: Row[][] = [];
  let current: Row[] = [];
  let bytes = 0;
  for (const row of rows) {
    if (current.length > 0 && bytes + row.json.length > MAX_STATEMENT_BYTES) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += row.json.length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Errors one row's data can cause, so splitting the batch finds it: data
 * exceptions (class 22: a NUL in jsonb, a lone surrogate), integrity
 * violations (23: a CHECK), program limits (54: jsonb too large), the server
 * running out of memory on a huge value (53200), and a value too large for the
 * driver to build (RangeError). Anything else (a missing table, no permission)
 * would fail every row alike and is thrown.
 */
function isRowAttributable(error: unknown): boolean {
  if (isTransientDbError(error)) return false;
  const code = sqlState(error);
  if (code !== undefined) return /^(22|23|54)/.test(code) || code === "53200";
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if (current instanceof RangeError) return true;
  }
  return false;
}

/**
 * The finishing statement, fenced: every row applies or none. Also used by the
 * claim to end rows it cannot run.
 */
export async function applyRows(db: Executor, rows: readonly FinishRow[]): Promise<string[]> {
  const result = await db.execute<{ job_id: string }>(sql`
    update ix_jobs as j set
      status = c.status,
      response = c.response,
      finished_at = now(),
      callback_next_attempt_at = case when j.callback_url is not null then now() end
    from unnest(
      ${sql.param(rows.map((r) => r.jobId))}::uuid[],
      ${sql.param(rows.map((r) => r.attempts))}::int[],
      ${sql.param(rows.map((r) => r.status))}::text[],
      ${sql.param(rows.map((r) => r.json))}::jsonb[]
    ) as c(job_id, attempts, status, response)
    where j.job_id = c.job_id and j.status = 'running' and j.attempts = c.attempts
    returning j.job_id`);
  return result.rows.map((r) => r.job_id);
}

/** Applies `rows` in a savepoint; when the database refuses them for a row's sake, halves and tries again. */
async function applySplitting(tx: Executor, rows: readonly Row[], options: CompleteOptions): Promise<string[]> {
  try {
    return await tx.transaction((sp) => applyRows(sp, rows));
  } catch (error) {
    if (!isRowAttributable(error)) throw error;
    const [only] = rows;
    if (rows.length === 1 && only) {
      return (await storeAsError(tx, only.completion, databaseReason(error), options)) ? [only.completion.jobId] : [];
    }
    const half = Math.ceil(rows.length / 2);
    return [...(await applySplitting(tx, rows.slice(0, half), options)), ...(await applySplitting(tx, rows.slice(half), options))];
  }
}

/** `22P05 unsupported Unicode escape sequence`: the SQLSTATE and PostgreSQL's message, quoted values masked. */
function databaseReason(error: unknown): string {
  const code = sqlState(error);
  // The innermost error with a message is the server's (Drizzle wraps it and repeats the statement's parameters).
  let message = "";
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if (!("query" in current)) message = current.message;
  }
  return `${code ? `${code} ` : ""}${maskQuoted(message)}`.trim() || "the database refused it";
}

/**
 * Ends one job `error` with a response saying why its own could not be
 * stored, fenced like any completion. The identity comes from the row, so it
 * does not matter how broken the refused response was. Returns whether it applied.
 */
async function storeAsError(tx: Executor, completion: Completion, reason: string, options: CompleteOptions): Promise<boolean> {
  const report = (storedAsError: boolean) => options.onUnstorable?.({ jobId: completion.jobId, reason, storedAsError });
  const found = await tx.execute<{
    client_id: string;
    request_id: string;
    ix_id: string;
    use_case: string;
    started_ms: number;
    now_ms: number;
  }>(sql`
    select client_id, request_id, ix_id, request->>'use_case' as use_case,
      (extract(epoch from started_at) * 1000)::float8 as started_ms, (extract(epoch from now()) * 1000)::float8 as now_ms
    from ix_jobs
    where job_id = ${completion.jobId}::uuid and status = 'running' and attempts = ${completion.attempts}`);
  const row = found.rows[0];
  if (!row) {
    report(false); // no longer this run's: fenced out, as its real response would have been
    return false;
  }
  const given = ResponseMetadata.safeParse((completion.response as { metadata?: unknown } | undefined)?.metadata);
  const startedAt = new Date(given.success ? given.data.started_at : row.started_ms);
  const finishedAt = new Date(given.success ? given.data.finished_at : row.now_ms);
  const response = unstorableResponse(
    { client_id: row.client_id, request_id: row.request_id, ix_id: row.ix_id, request: { use_case: row.use_case } },
    {
      pipeline: given.success ? given.data.pipeline : row.use_case,
      startedAt,
      finishedAt,
      durationMs: given.success ? given.data.duration_ms : finishedAt.getTime() - startedAt.getTime(),
      attempt: completion.attempts + 1,
    },
    reason,
  );
  try {
    const parsed = ResponseIX.parse(response);
    const applied = await tx.transaction((sp) =>
      applyRows(sp, [{ jobId: completion.jobId, attempts: completion.attempts, status: "error", json: JSON.stringify(parsed) }]),
    );
    report(applied.length === 1);
    return applied.length === 1;
  } catch (error) {
    if (isTransientDbError(error)) throw error;
    report(false);
    return false;
  }
}
