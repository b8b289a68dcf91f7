import { describe, expect } from "vitest";
import { type Database, isTransientDbError, jobs, sql } from "../src/index.ts";
import { waitFor } from "../../testing/src/wait.ts";
import { insertJob, request, sqlState, test } from "./fixtures.ts";

/**
 * insertPendingManySettled settles each submission of a batch on its own:
 * the rows its insert statement created stand whatever happens to the
 * re-read of the keys that already existed. The interleavings are forced
 * with real locks on real connections: a transaction holding an uncommitted
 * row of key X makes the batch's insert wait, and an ACCESS EXCLUSIVE lock
 * requested meanwhile queues behind the insert and is granted the moment the
 * insert commits, so it sits exactly between the insert and the re-read.
 */

async function lockWaiters(db: Database): Promise<number> {
  const result = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
  );
  return result.rows[0]?.n ?? 0;
}

const until = (what: string, check: () => Promise<boolean>) => waitFor(what, check, { timeoutMs: 20_000 });

/**
 * Opens a transaction that inserts `insert`'s row and holds it uncommitted
 * until `commit()` is called; `inserted` resolves once the row is in.
 */
function holdUncommitted(db: Database, insert: (tx: Parameters<Parameters<Database["transaction"]>[0]>[0]) => Promise<unknown>) {
  let commit: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    commit = resolve;
  });
  let inserted: () => void = () => undefined;
  const insertedPromise = new Promise<void>((resolve) => {
    inserted = resolve;
  });
  const done = db.transaction(async (tx) => {
    await insert(tx);
    inserted();
    await gate;
  });
  return { inserted: insertedPromise, commit: () => commit(), done };
}

describe("insertPendingManySettled", () => {
  test("a failed re-read of the existing keys (57014) refuses only those: the new row's submission is settled, created", async ({
    database,
  }) => {
    const { db } = database;
    const batchDb = database.connect({ max: 2, statementTimeoutMillis: 3_000 });
    const newA = request({ request_id: "new-A" });
    const existing = request({ request_id: "existing-X" });
    const holder = holdUncommitted(db, (tx) => jobs.insertPending(tx, { request: existing }));
    await holder.inserted;

    const batch = jobs.insertPendingManySettled(batchDb, [{ request: newA }, { request: existing }]);
    await until("the batch's insert to wait on the uncommitted row", async () => (await lockWaiters(db)) === 1);
    const locker = await db.$client.connect();
    try {
      await locker.query("begin");
      const locked = locker.query("lock table ix_jobs in access exclusive mode");
      await until("the lock request to queue behind the insert", async () => (await lockWaiters(db)) === 2);
      holder.commit();
      await holder.done;
      await locked; // granted the moment the batch's insert committed: the re-read now waits, then times out

      const [a, x] = await batch;
      await locker.query("rollback");
      expect(a).toMatchObject({ status: "fulfilled", value: { created: true, job: { request_id: "new-A", status: "pending" } } });
      expect(x?.status).toBe("rejected");
      const reason = x?.status === "rejected" ? x.reason : undefined;
      expect(sqlState(reason)).toBe("57014");
      expect(isTransientDbError(reason)).toBe(true);
      // What the client was told about new-A is what is stored.
      const stored = a?.status === "fulfilled" ? await jobs.get(db, a.value.job.job_id) : null;
      expect(stored).toEqual(a?.status === "fulfilled" ? a.value.job : undefined);
    } finally {
      await locker.query("rollback").catch(() => undefined);
      locker.release();
    }
  });

  test("a conflicting row pruned between the insert and its re-read: the key is free again, so it is inserted, created", async ({
    database,
  }) => {
    const { db } = database;
    const batchDb = database.connect({ max: 2 });
    const monthAgo = new Date(Date.now() - 30 * 86_400_000);
    const key = request({ request_id: "pruned-X" });
    // An old finished job of the same key, still uncommitted, so the batch waits on it.
    const holder = holdUncommitted(db, (tx) =>
      insertJob(tx, { status: "done", request: key, createdAt: monthAgo, startedAt: monthAgo, finishedAt: monthAgo }),
    );
    await holder.inserted;
    const batch = jobs.insertPendingManySettled(batchDb, [{ request: key, callbackUrl: "https://hooks.example/new" }]);
    await until("the batch's insert to wait on the uncommitted row", async () => (await lockWaiters(db)) === 1);

    let pruned = -1;
    const prune = db.transaction(async (tx) => {
      await tx.execute(sql`lock table ix_jobs in access exclusive mode`);
      pruned = await jobs.pruneTerminal(tx, { olderThanSeconds: 86_400, batchSize: 100 });
    });
    await until("the prune's lock to queue behind the insert", async () => (await lockWaiters(db)) === 2);
    holder.commit();
    await holder.done;
    await prune;
    expect(pruned).toBe(1);

    const [settled] = await batch;
    expect(settled).toMatchObject({
      status: "fulfilled",
      value: { created: true, job: { request_id: "pruned-X", status: "pending", callback_url: "https://hooks.example/new" } },
    });
    const rows = await db.execute<{ job_id: string; status: string }>(sql`select job_id, status from ix_jobs where request_id = 'pruned-X'`);
    expect(rows.rows).toEqual([{ job_id: settled?.status === "fulfilled" ? settled.value.job.job_id : "", status: "pending" }]);
  });

  test("every result is in input order, repeats of a key share the first's outcome", async ({ database: { db } }) => {
    const a = request();
    const b = request();
    const results = await jobs.insertPendingManySettled(db, [{ request: a }, { request: b }, { request: a }]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    const values = results.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    expect(values.map((v) => v?.created)).toEqual([true, true, false]);
    expect(values[2]?.job).toEqual(values[0]?.job);
  });
});
