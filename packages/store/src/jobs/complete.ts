import { ResponseIX, ResponseMetadata } from "@ix/contracts";
import { createHash } from "node:crypto";
import { type Query, sql } from "drizzle-orm";
import { PgDialect, PgTransaction } from "drizzle-orm/pg-core";
import type { Executor } from "../db.ts";
import { isTransientDbError, sqlState } from "../errors.ts";
import { cancelReason, completionStatus, errorEntryText, type RunOutcome, unstorableResponse } from "../lifecycle.ts";
import { maskQuoted } from "../log-safe-error.ts";
import { appendedErrors } from "./errors-list.ts";
import { InvalidJobInputError } from "./input.ts";
import { describeIssues } from "./row.ts";

export interface Completion {
  jobId: string;
  /** The `attempts` value the claimer saw: the fence. */
  attempts: number;
  response: ResponseIX;
  /**
   * How the run ends, as the worker decided it (`lifecycle.decideRunOutcome`).
   * Omitted: `done` or `error` by the response (`lifecycle.completionStatus`).
   * `cancelled` is what the worker saw; the row's own cancel request decides
   * (a row with one ends `cancelled` whatever the outcome says).
   */
  outcome?: RunOutcome;
}

/** What a completion that applied did to its job. */
export interface CompletedRun {
  jobId: string;
  /** `pending`: retried (due again after the outcome's delay); `cancelled`: a cancel was requested. */
  status: "done" | "error" | "pending" | "cancelled";
}

/** The longest retry delay a completion may ask for. */
const MAX_RETRY_DELAY_SECONDS = 365 * 86_400;

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

/**
 * One row's part of the finishing statement: the fence, the status the run
 * ends in unless a cancel was requested (`pending` = retried after
 * `delaySeconds`), the serialised response, and the `errors` entry's text
 * when the run failed.
 */
export interface FinishRow {
  jobId: string;
  attempts: number;
  status: "done" | "error" | "pending";
  json: string;
  delaySeconds?: number;
  errorText?: string | null;
}

/** A completion ready for the statement. */
interface Row extends FinishRow {
  completion: Completion;
}

/**
 * `completeRuns`, answering only which completions applied: the ids.
 */
export async function completeMany(
  db: Executor,
  completions: readonly Completion[],
  options: CompleteOptions = {},
): Promise<string[]> {
  return (await completeRuns(db, completions, options)).map((run) => run.jobId);
}

/**
 * Ends many runs in one fenced statement, each as its outcome says: `done`,
 * `error`, or `retry`, which returns the job to `pending` (due after the
 * delay, `attempts + 1`, no callback). A failed run, final or retried, is
 * appended to the job's `errors`. A row whose cancel was requested ends
 * `cancelled` instead, whatever the outcome, with the run's response saying
 * who cancelled it; since the status is chosen by the statement itself, a
 * cancel that commits while the completion waits for the row is still seen.
 * A row changes only while it is still `running` with the attempts its
 * claimer saw, so a worker presumed dead cannot overwrite the run that
 * replaced it. A job that ended (done, error, cancelled) with a callback_url
 * becomes due for delivery. Returns what became of each completion that applied.
 *
 * An outcome that contradicts its response (`done` with an error, `error` or
 * `retry` without one, a retry delay that is not a number of seconds) is a
 * caller's bug: InvalidJobInputError, and nothing is written.
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
export async function completeRuns(
  db: Executor,
  completions: readonly Completion[],
  options: CompleteOptions = {},
): Promise<CompletedRun[]> {
  if (completions.length === 0) return [];
  completions.forEach(assertConsistentOutcome);
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
    const applied: CompletedRun[] = [];
    for (const chunk of chunks) applied.push(...(await applySplitting(tx, chunk, options)));
    for (const { completion, reason } of invalid) {
      const stored = await storeAsError(tx, completion, reason, options);
      if (stored) applied.push(stored);
    }
    return applied;
  });
}

function assertConsistentOutcome(completion: Completion, index: number): void {
  const { outcome } = completion;
  if (outcome === undefined || outcome.kind === "cancelled") return;
  const failed = (completion.response as { error?: unknown } | undefined)?.error != null;
  const where = `completion ${index} (job ${completion.jobId})`;
  if (outcome.kind === "done" && failed) throw new InvalidJobInputError(`${where}: outcome done, but its response has an error`);
  if (outcome.kind !== "done" && !failed) throw new InvalidJobInputError(`${where}: outcome ${outcome.kind}, but its response has no error`);
  if (outcome.kind === "retry") {
    const delay = outcome.delaySeconds;
    if (typeof delay !== "number" || !Number.isFinite(delay) || delay < 0 || delay > MAX_RETRY_DELAY_SECONDS) {
      throw new InvalidJobInputError(`${where}: retry delaySeconds must be a number of seconds in [0, ${MAX_RETRY_DELAY_SECONDS}], got ${delay}`);
    }
  }
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
  const { outcome } = completion;
  const status = outcome?.kind === "retry" ? "pending" : outcome?.kind === "done" || outcome?.kind === "error" ? outcome.kind : completionStatus(parsed.data);
  return {
    completion,
    jobId: completion.jobId,
    attempts: completion.attempts,
    status,
    json,
    delaySeconds: outcome?.kind === "retry" ? outcome.delaySeconds : 0,
    errorText: parsed.data.error === null ? null : errorEntryText(parsed.data.error),
  };
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

// Each row ends one of three ways; the statement decides which on the row it
// updates, so a cancel committed while it waited for the row still counts.
const cancelling = sql.raw("j.cancel_requested_at is not null");
const retrying = sql.raw("(j.cancel_requested_at is null and c.status = 'pending')");

/**
 * The finishing statement, fenced: every row applies or none. Also used by the
 * claim to end rows it cannot run. A cancelled run's response is the run's
 * own with its result dropped and its error saying who cancelled it
 * (`lifecycle.cancelledRunResponse`).
 */
export async function applyRows(db: Executor, rows: readonly FinishRow[]): Promise<CompletedRun[]> {
  const { query, name } = finishStatement();
  const prepared = db._.session.prepareQuery(query, undefined, name, false);
  const result = (await prepared.execute({
    jobIds: rows.map((r) => r.jobId),
    attempts: rows.map((r) => r.attempts),
    statuses: rows.map((r) => r.status),
    responses: rows.map((r) => r.json),
    delays: rows.map((r) => r.delaySeconds ?? 0),
    errorTexts: rows.map((r) => r.errorText ?? null),
  })) as { rows: Array<{ job_id: string; status: CompletedRun["status"] }> };
  return result.rows.map((r) => ({ jobId: r.job_id, status: r.status }));
}

let finishing: { query: Query; name: string } | undefined;

/**
 * The finishing statement's text, the same for every batch (the rows are array
 * parameters): built once and run as a named prepared statement, so neither
 * Drizzle's building nor PostgreSQL's planning is paid per batch.
 */
function finishStatement(): { query: Query; name: string } {
  if (!finishing) {
    const query = new PgDialect().sqlToQuery(sql`
    update ix_jobs as j set
      status = case when ${cancelling} then 'cancelled' else c.status end,
      response = case
        when ${cancelling} then jsonb_set(
          jsonb_set(c.response, '{error}', to_jsonb(case j.cancel_requested_by
            when 'client' then ${sql.raw(quoted(cancelReason("client", "running")))}::text
            else ${sql.raw(quoted(cancelReason("operator", "running")))}::text end)),
          '{result}', 'null'::jsonb)
        when ${retrying} then null
        else c.response end,
      attempts = case when ${retrying} then j.attempts + 1 else j.attempts end,
      run_at = case when ${retrying} then now() + make_interval(secs => c.delay_seconds) else j.run_at end,
      -- A retry that waits out a backoff gives up its turn and takes a new one when due (jobs/fair-share.ts).
      fair_tag = case when ${retrying} and c.delay_seconds > 0 then null else j.fair_tag end,
      started_at = case when ${retrying} then null else j.started_at end,
      finished_at = case when ${retrying} then null else now() end,
      lease_expires_at = null,
      errors = case
        when not ${cancelling} and c.error_text is not null
        then ${appendedErrors({ errors: sql.raw("j.errors"), attempt: sql.raw("j.attempts + 1"), at: sql`now()`, error: sql.raw("c.error_text") })}
        else j.errors end,
      callback_next_attempt_at = case when not ${retrying} and j.callback_url is not null then now() end
    from unnest(
      ${sql.placeholder("jobIds")}::uuid[],
      ${sql.placeholder("attempts")}::int[],
      ${sql.placeholder("statuses")}::text[],
      ${sql.placeholder("responses")}::jsonb[],
      ${sql.placeholder("delays")}::float8[],
      ${sql.placeholder("errorTexts")}::text[]
    ) as c(job_id, attempts, status, response, delay_seconds, error_text)
    where j.job_id = c.job_id and j.status = 'running' and j.attempts = c.attempts
    returning j.job_id, j.status`);
    finishing = { query, name: `ix_finish_${createHash("sha1").update(query.sql).digest("hex").slice(0, 12)}` };
  }
  return finishing;
}

/** A code constant as an SQL string literal. */
function quoted(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Applies `rows` in a savepoint; when the database refuses them for a row's sake, halves and tries again. */
async function applySplitting(tx: Executor, rows: readonly Row[], options: CompleteOptions): Promise<CompletedRun[]> {
  try {
    return await tx.transaction((sp) => applyRows(sp, rows));
  } catch (error) {
    if (!isRowAttributable(error)) throw error;
    const [only] = rows;
    if (rows.length === 1 && only) {
      const stored = await storeAsError(tx, only.completion, databaseReason(error), options);
      return stored ? [stored] : [];
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
 * stored, fenced like any completion (and `cancelled` instead when a cancel
 * was requested). The identity comes from the row, so it does not matter how
 * broken the refused response was. Returns what it did, or null when it did not apply.
 */
async function storeAsError(tx: Executor, completion: Completion, reason: string, options: CompleteOptions): Promise<CompletedRun | null> {
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
    return null;
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
    const [applied] = await tx.transaction((sp) =>
      applyRows(sp, [
        {
          jobId: completion.jobId,
          attempts: completion.attempts,
          status: "error",
          json: JSON.stringify(parsed),
          errorText: errorEntryText(parsed.error ?? reason),
        },
      ]),
    );
    report(applied !== undefined);
    return applied ?? null;
  } catch (error) {
    if (isTransientDbError(error)) throw error;
    report(false);
    return null;
  }
}
