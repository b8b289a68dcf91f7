import type { RequestIX } from "@ix/contracts";
import { connect, isTransientDbError, jobs, sql, type Database } from "@ix/store";
import { freePort } from "@ix/provision";
import { test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import { SubmissionBatcher, SubmissionQueueTimeoutError, SubmissionsClosedError } from "../src/submission-batcher.ts";
import { body } from "./fixtures.ts";

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

  test("a batch whose re-read of existing keys fails: the new submission is answered created (it is stored), only the existing key fails", async ({
    database,
  }) => {
    const { db } = database;
    const apiDb = database.connect({ max: 4, statementTimeoutMillis: 3_000 });
    const batcher = new SubmissionBatcher(apiDb);
    const lockWaiters = async () =>
      (
        await db.execute<{ n: number }>(
          sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        )
      ).rows[0]?.n ?? 0;
    // Two transactions each hold one key uncommitted: Z makes the first statement wait
    // (so the next two submissions queue into one batch), X makes that batch's insert wait.
    const [z, x, newA] = [submission({ request_id: "held-Z" }), submission({ request_id: "held-X" }), submission({ request_id: "new-A" })];
    const holders = [z, x].map((held) => {
      let commit: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        commit = resolve;
      });
      let inserted: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        inserted = resolve;
      });
      const done = db.transaction(async (tx) => {
        await jobs.insertPending(tx, held);
        inserted();
        await gate;
      });
      return { ready, commit: () => commit(), done };
    });
    await Promise.all(holders.map((h) => h.ready));
    const locker = await db.$client.connect();
    try {
      const first = batcher.submit(z);
      const [createdA, failedX] = [batcher.submit(newA), batcher.submit(x)];
      failedX.catch(() => undefined); // awaited below
      await waitFor("the first statement to wait on Z", async () => (await lockWaiters()) === 1);
      holders[0]?.commit();
      expect((await first).created).toBe(false);
      await waitFor("the batch [new-A, X] to wait on X", async () => (await lockWaiters()) === 1);
      await locker.query("begin");
      const locked = locker.query("lock table ix_jobs in access exclusive mode");
      await waitFor("the lock to queue behind the batch's insert", async () => (await lockWaiters()) === 2);
      holders[1]?.commit();
      await holders[1]?.done;
      // Granted as the batch's insert commits: the re-read of X waits on it until statement_timeout.
      await locked;

      const a = await createdA;
      const error = await failedX.then(() => null, (reason: unknown) => reason);
      await locker.query("rollback");
      expect(a.created).toBe(true);
      expect(await jobs.get(db, a.job.job_id)).toEqual(a.job);
      // The existing key's refusal is transient: the route answers it 503, and a retry gets the job.
      expect(isTransientDbError(error)).toBe(true);
      expect((await batcher.submit(x)).created).toBe(false);
    } finally {
      await locker.query("rollback").catch(() => undefined);
      locker.release();
      for (const holder of holders) holder.commit();
      await Promise.all(holders.map((h) => h.done));
      await batcher.close();
    }
  });

  test("rejects a batch cap that is not a positive integer", async ({ database: { db } }) => {
    expect(() => new SubmissionBatcher(db, { maxBatch: 0 })).toThrow(/maxBatch must be a positive integer, got 0/);
  });
});
