import type { RequestIX } from "@ix/contracts";
import { connect, isTransientDbError, sql, type Database } from "@ix/store";
import { freePort } from "@ix/store/provision";
import { test } from "@ix/testing";
import { describe, expect } from "vitest";
import { SubmissionBatcher, SubmissionQueueTimeoutError, SubmissionsClosedError } from "../src/submission-batcher";
import { body } from "./fixtures";

function submission(overrides: Partial<RequestIX> = {}): { request: RequestIX; callbackUrl: string | null } {
  const { callback_url: _, ...request } = body(overrides) as RequestIX & { callback_url?: string };
  return { request: { ...request, options: request.options ?? {} }, callbackUrl: null };
}

/**
 * Sizes of the statements that inserted the given jobs, in commit order: rows
 * written by one statement share its transaction's created_at (now()).
 */
async function statementSizes(db: Database): Promise<number[]> {
  const result = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from ix_jobs group by created_at order by created_at`,
  );
  return result.rows.map((r) => r.n);
}

describe("SubmissionBatcher", () => {
  test("an idle batcher sends at once; what arrives meanwhile goes in the next statement, capped at maxBatch", async ({
    database: { db },
  }) => {
    const batcher = new SubmissionBatcher(db, { maxBatch: 4 });
    const submissions = Array.from({ length: 10 }, () => submission());
    // All ten arrive in one tick: the first finds the batcher idle and goes alone,
    // the other nine queue behind it and go four, four and one.
    const results = await Promise.all(submissions.map((s) => batcher.submit(s)));
    expect(await statementSizes(db)).toEqual([1, 4, 4, 1]);
    results.forEach((result, i) => {
      expect(result.created).toBe(true);
      expect(result.job.request_id).toBe(submissions[i]?.request.request_id);
    });
    await batcher.close();
  });

  test("a repeated key in one batch gets the first submission's job, created once", async ({ database: { db } }) => {
    const batcher = new SubmissionBatcher(db);
    const first = submission();
    const [opener, a, b, c] = await Promise.all([
      batcher.submit(submission()),
      batcher.submit({ ...first, callbackUrl: "https://first.example/hook" }),
      batcher.submit(submission()),
      batcher.submit({ ...first, callbackUrl: "https://second.example/hook" }),
    ]);
    expect(await statementSizes(db)).toEqual([1, 2]);
    expect([opener?.created, a?.created, b?.created, c?.created]).toEqual([true, true, true, false]);
    expect(c?.job).toEqual(a?.job);
    expect(a?.job.callback_url).toBe("https://first.example/hook");
    await batcher.close();
  });

  test("a failed statement fails every submission of its batch with the same error", async () => {
    // A port nothing listens on: the database is unreachable, as in an outage.
    const broken = connect(`postgres://postgres@127.0.0.1:${await freePort()}/ix`, { max: 1, connectionTimeoutMillis: 2_000 });
    const batcher = new SubmissionBatcher(broken);
    const outcomes = await Promise.allSettled([batcher.submit(submission()), batcher.submit(submission()), batcher.submit(submission())]);
    const errors = outcomes.map((o) => (o.status === "rejected" ? (o.reason as unknown) : "fulfilled"));
    expect(errors[0]).toBeInstanceOf(Error);
    // The second and third went in one statement, so they share its error.
    expect(errors[2]).toBe(errors[1]);
    // Transient, so the route answers each of them 503.
    expect(isTransientDbError(errors[1])).toBe(true);
    await batcher.close();
    await broken.close();
  });

  test("close answers every queued submission, then refuses new ones", async ({ database: { db } }) => {
    const batcher = new SubmissionBatcher(db);
    const pending = Array.from({ length: 5 }, () => batcher.submit(submission()));
    await batcher.close();
    const results = await Promise.all(pending);
    expect(results.every((r) => r.created)).toBe(true);
    await expect(batcher.submit(submission())).rejects.toBeInstanceOf(SubmissionsClosedError);
    expect(await statementSizes(db)).toEqual([1, 4]);
  });

  test("a submission stuck behind a blocked statement is refused after maxWaitMs, not queued for as long as the lock", async ({
    database: { db, connect: open },
  }) => {
    const locker = await open({ max: 1 }).$client.connect();
    const batcher = new SubmissionBatcher(db, { maxWaitMs: 200 });
    try {
      await locker.query("begin");
      await locker.query("lock table ix_jobs in access exclusive mode");
      const first = batcher.submit(submission({ request_id: "blocked" }));
      const second = batcher.submit(submission({ request_id: "refused" }));
      // Refused while the first statement is still blocked on the lock.
      await expect(second).rejects.toBeInstanceOf(SubmissionQueueTimeoutError);
      await locker.query("commit");
      expect((await first).created).toBe(true);
      const rows = await db.execute<{ request_id: string }>(sql`select request_id from ix_jobs`);
      expect(rows.rows.map((r) => r.request_id)).toEqual(["blocked"]);
    } finally {
      await locker.query("rollback").catch(() => undefined);
      locker.release();
      await batcher.close();
    }
  });

  test("rejects a batch cap that is not a positive integer", async ({ database: { db } }) => {
    expect(() => new SubmissionBatcher(db, { maxBatch: 0 })).toThrow(/maxBatch must be a positive integer, got 0/);
  });
});
