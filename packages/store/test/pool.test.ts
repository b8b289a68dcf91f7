import { sql } from "../src/index.ts";
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
    expect(await failure).toBeInstanceOf(Error);
    // The dead client is gone from the pool; the next statement gets a fresh connection.
    expect((await db.execute<{ one: number }>(sql`select 1 as one`)).rows).toEqual([{ one: 1 }]);
    expect(db.$client.totalCount).toBe(1);
  });
});
