import { MAX_JOB_ERRORS } from "@ix/contracts";
import { type SQL, sql } from "drizzle-orm";

/** An instant as the wire's Timestamp (`2026-01-02T03:04:05.678Z`), in SQL. */
export function isoInstant(at: SQL): SQL {
  return sql`to_char((${at}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/**
 * `errors` with one failed run appended, keeping only the last MAX_JOB_ERRORS:
 * `lifecycle.appendJobError` applied in SQL. `error` must already be bounded
 * by `lifecycle.errorEntryText`.
 */
export function appendedErrors({ errors, attempt, at, error }: { errors: SQL; attempt: SQL; at: SQL; error: SQL }): SQL {
  return sql`(
    select coalesce(jsonb_agg(e.value order by e.n), '[]'::jsonb)
    from jsonb_array_elements(
      ${errors} || jsonb_build_array(jsonb_build_object('attempt', ${attempt}, 'at', ${isoInstant(at)}, 'error', ${error}::text))
    ) with ordinality as e(value, n)
    where e.n > jsonb_array_length(${errors}) + 1 - ${sql.raw(String(MAX_JOB_ERRORS))}
  )`;
}
