import { describe, expect } from "vitest";
import { connect, type Database, isTransientDbError, jobs, pg, sql } from "../src/index.ts";
import { freePort, insertJob, request, test } from "./fixtures.ts";

/**
 * A client LISTENing on the pending channel. `heard()` returns every payload
 * received before a sentinel that `db` sends last: notifications are delivered
 * in commit order, so once the sentinel is here every earlier one is too.
 */
async function listen(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const payloads: string[] = [];
  let sentinel = 0;
  const waiting = new Map<string, () => void>();
  client.on("notification", (n) => {
    if (n.channel !== jobs.PENDING_CHANNEL) return;
    const payload = n.payload ?? "";
    const done = waiting.get(payload);
    if (done) done();
    else payloads.push(payload);
  });
  await client.query(`listen ${jobs.PENDING_CHANNEL}`);
  return {
    client,
    async heard(db: Database): Promise<string[]> {
      const name = `sentinel-${++sentinel}`;
      const arrived = new Promise<void>((resolve) => waiting.set(name, resolve));
      await db.execute(sql`select pg_notify(${jobs.PENDING_CHANNEL}, ${name})`);
      await Promise.race([
        arrived,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no ${name} notification within 10 s`)), 10_000)),
      ]);
      return payloads.splice(0);
    },
    end: () => client.end(),
  };
}

describe("wake-ups after the commit", () => {
  test("a transaction that makes jobs pending sends no NOTIFY, so it never takes the notify lock at its commit", async ({
    database: { db, url },
  }) => {
    // PostgreSQL takes its database-wide notify lock (held until the commit record is flushed) only in
    // a transaction with notifications queued: one that queued none commits without it.
    const listener = await listen(url);
    try {
      const failed = await insertJob(db, { status: "error" });
      await insertJob(db, { status: "error" });
      await db.transaction(async (tx) => {
        expect((await jobs.insertPendingMany(tx, [{ request: request() }, { request: request() }])).every((r) => r.created)).toBe(true);
        expect((await jobs.insertPending(tx, { request: request() })).created).toBe(true);
        expect((await jobs.retry(tx, { jobId: failed.job_id })).outcome).toBe("retried");
        expect((await jobs.retryFailed(tx, { limit: 10 })).retried).toHaveLength(1);
      });
      expect(await listener.heard(db)).toEqual([]);
      // Its committer wakes the workers, in a statement of its own.
      jobs.pendingWakeups(db).wake();
      await jobs.pendingWakeups(db).settled();
      expect(await listener.heard(db)).toEqual([""]);
    } finally {
      await listener.end();
    }
  });

  test("on the database, a woken listener finds the row: the wake-up follows the commit", async ({ database: { db, url } }) => {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    try {
      const req = request();
      // Read by the listener's own connection the moment the notification arrives.
      const found = new Promise<number>((resolve, reject) => {
        listener.once("notification", () => {
          listener
            .query("select count(*)::int as n from ix_jobs where request_id = $1", [req.request_id])
            .then((result) => resolve(result.rows[0].n), reject);
        });
      });
      await listener.query(`listen ${jobs.PENDING_CHANNEL}`);
      await jobs.insertPending(db, { request: req });
      expect(await found).toBe(1);
    } finally {
      await listener.end();
    }
  });

  test("wake-ups requested while one is in flight yield exactly one more", async ({ database }) => {
    // One connection, held here: the first wake-up's statement waits for it, i.e. is in flight.
    const single = database.connect({ max: 1 });
    const listener = await listen(database.url);
    try {
      const wakeups = new jobs.PendingWakeups(single);
      const held = await single.$client.connect();
      wakeups.wake();
      wakeups.wake();
      wakeups.wake();
      wakeups.wake();
      held.release();
      await wakeups.settled();
      expect(await listener.heard(database.db)).toEqual(["", ""]);
      // Idle again: the next request goes out at once, alone.
      wakeups.wake();
      await wakeups.settled();
      expect(await listener.heard(database.db)).toEqual([""]);
    } finally {
      await listener.end();
    }
  });

  test("a failed wake-up goes to the onError listeners and leaves none owed; the next is tried again", async () => {
    // A port nothing listens on: the database is unreachable, as in an outage.
    const broken = connect(`postgres://postgres@127.0.0.1:${await freePort()}/ix`, { max: 1, connectionTimeoutMillis: 2_000 });
    try {
      const wakeups = new jobs.PendingWakeups(broken);
      const errors: unknown[] = [];
      wakeups.onError((error) => errors.push(error));
      wakeups.wake();
      await wakeups.settled();
      expect(errors).toHaveLength(1);
      expect(isTransientDbError(errors[0])).toBe(true);
      wakeups.wake();
      await wakeups.settled();
      expect(errors).toHaveLength(2);
    } finally {
      await broken.close();
    }
  });

  test("one PendingWakeups per pool, shared by every write of the process", async ({ database }) => {
    // The fixture closes pools it opened.
    const other = database.connect({ max: 1 });
    expect(jobs.pendingWakeups(database.db)).toBe(jobs.pendingWakeups(database.db));
    expect(jobs.pendingWakeups(other)).not.toBe(jobs.pendingWakeups(database.db));
  });
});
