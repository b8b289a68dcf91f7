import { connect, sql } from "../src/index.ts";
import { describe, expect } from "vitest";
import { test } from "./fixtures.ts";

/** Ends `pid`'s backend from another connection, as a restarting server or an operator would. */
async function terminate(admin: { execute: (query: ReturnType<typeof sql>) => Promise<unknown> }, pid: number): Promise<void> {
  await admin.execute(sql`select pg_terminate_backend(${pid})`);
}

describe("connections that die while checked out", () => {
  test("a backend killed mid-transaction fails the statement in flight and the process lives on", async ({ database }) => {
    const db = database.connect({ max: 2 });
    const admin = database.connect({ max: 1 });
    const failure = db
      .transaction(async (tx) => {
        const { rows } = await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`);
        const sleeping = tx.execute(sql`select pg_sleep(30)`);
        await terminate(admin, rows[0]!.pid);
        await sleeping;
      })
      .then(
        () => null,
        (error: unknown) => error,
      );
    // Unhandled, the client's 'error' event would crash the test process instead.
    // The statement's own failure, not the rollback's that follows it on the dead connection.
    expect(await failure).toMatchObject({ cause: { code: "57P01" } }); // admin_shutdown
    // The dead client is gone from the pool; the next statement gets a fresh connection.
    expect((await db.execute<{ one: number }>(sql`select 1 as one`)).rows).toEqual([{ one: 1 }]);
    expect(db.$client.totalCount).toBe(1);
  });
});

describe("transactions whose connection is already dead", () => {
  test("a begin that fails gives its connection back to the pool, so the pool still ends", async ({ database }) => {
    // Not the fixture's: this test ends the pool itself, and a leaked connection would hang the fixture's teardown.
    const db = connect(database.url, { max: 4, applicationName: "ix-pool-test" });
    const admin = database.connect({ max: 1 });
    const failures: unknown[] = [];
    for (let round = 0; round < 20; round++) {
      // Four idle connections, all killed; transactions start as the kills land, so their begin meets dead backends.
      await Promise.all(Array.from({ length: 4 }, () => db.transaction((tx) => tx.execute(sql`select pg_sleep(0.01)`))));
      const killed = admin.execute(sql`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and application_name = 'ix-pool-test'`);
      await killed;
      const attempts = Array.from({ length: 4 }, () =>
        db.transaction((tx) => tx.execute(sql`select 1`)).catch((error: unknown) => failures.push(error)),
      );
      await Promise.all(attempts);
      if (db.$client.totalCount !== db.$client.idleCount) break;
    }
    // Every connection is back in the pool (or dropped): none is left checked out once all transactions have settled.
    expect(db.$client.totalCount - db.$client.idleCount).toBe(0);
    expect(failures.length).toBeGreaterThan(0);
    const ended = db.$client.end().then(() => "ended");
    expect(await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5_000, "hung"))])).toBe("ended");
  });
});
