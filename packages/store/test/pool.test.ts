import { type AddressInfo, createConnection, createServer, type Socket } from "node:net";
import { waitFor } from "../../testing/src/wait.ts";
import { connect, isTransientDbError, ixJobs, sql } from "../src/index.ts";
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
        const pid = rows[0]!.pid;
        // Drizzle sends a statement only once it is awaited or then'd: start it, and kill the backend only once
        // the server runs it, or the kill can land first and the statement meet an already broken client.
        const sleeping = Promise.resolve(tx.execute(sql`select pg_sleep(30)`));
        sleeping.catch(() => {});
        await waitFor("the statement running on the server", async () => {
          const { rows: seen } = await admin.execute<{ running: boolean }>(
            sql`select exists (select 1 from pg_stat_activity where pid = ${pid} and state = 'active' and query like 'select pg_sleep%') as running`,
          );
          return seen[0]?.running === true;
        });
        await terminate(admin, pid);
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

describe("pool modes", () => {
  const timedOut = { cause: { code: "57014" } }; // query_canceled by statement_timeout

  test("session mode sets the statement timeout once per connection, before its first statement", async ({ database }) => {
    const db = connect(database.url, { max: 1, statementTimeoutMillis: 200 });
    try {
      // The very first statement of a fresh connection is already bounded.
      await expect(db.execute(sql`select pg_sleep(2)`)).rejects.toMatchObject(timedOut);
      expect((await db.execute<{ t: string }>(sql`select current_setting('statement_timeout') as t`)).rows).toEqual([{ t: "200ms" }]);
      await expect(db.transaction((tx) => tx.execute(sql`select pg_sleep(2)`))).rejects.toMatchObject(timedOut);
    } finally {
      await db.close();
    }
  });

  test("transaction mode keeps no session state: the timeout is SET LOCAL per transaction and statements go unnamed", async ({ database }) => {
    const db = connect(database.url, { max: 1, statementTimeoutMillis: 200, poolMode: "transaction" });
    try {
      await expect(db.execute(sql`select pg_sleep(2)`)).rejects.toMatchObject(timedOut);
      await expect(db.transaction((tx) => tx.execute(sql`select pg_sleep(2)`))).rejects.toMatchObject(timedOut);
      // Bounded within each statement's own transaction, while the connection itself stays at the server's default.
      expect((await db.execute<{ t: string }>(sql`select current_setting('statement_timeout') as t`)).rows).toEqual([{ t: "200ms" }]);
      const client = await db.$client.connect();
      try {
        expect((await client.query("show statement_timeout")).rows).toEqual([{ statement_timeout: "0" }]);
      } finally {
        client.release();
      }
      // A named statement (the store's batch insert is one) leaves nothing prepared on the connection.
      const named = db.select({ one: sql<number>`1` }).from(ixJobs).limit(1).prepare("ix_pool_test_named");
      await named.execute();
      await db.transaction((tx) => tx.select({ one: sql<number>`1` }).from(ixJobs).limit(1).prepare("ix_pool_test_named").execute());
      expect((await db.execute(sql`select name from pg_prepared_statements`)).rows).toEqual([]);
      // The same timeout holds for work that fits in it, and a failed statement leaves the connection usable.
      expect((await db.execute<{ one: number }>(sql`select 1 as one`)).rows).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  test("session mode keeps named statements prepared per connection", async ({ database }) => {
    const db = connect(database.url, { max: 1 });
    try {
      await db.select({ one: sql<number>`1` }).from(ixJobs).limit(1).prepare("ix_pool_test_named").execute();
      expect((await db.execute(sql`select name from pg_prepared_statements`)).rows).toEqual([{ name: "ix_pool_test_named" }]);
    } finally {
      await db.close();
    }
  });
});

/**
 * A TCP relay to the test database that can go silent: while frozen it passes
 * nothing either way, not even a close, as a network partition does (packets
 * vanish). Real sockets throughout.
 */
async function silentRelay(target: URL) {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port || 5432) });
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on("data", (chunk: Buffer) => {
        if (!frozen) to.write(chunk);
      });
      from.on("error", () => undefined);
      from.on("close", () => {
        sockets.delete(from);
        // A close does not cross a partition either: the other side keeps its socket.
        if (!frozen) to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(target.href);
  url.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: url.href,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("a connection that hears nothing (a partition: no socket closed)", () => {
  test("a statement unanswered for socketTimeoutMillis fails transient, its connection is dropped, an idle one is kept", async ({ database }) => {
    const relay = await silentRelay(new URL(database.url));
    const db = connect(relay.url, { max: 2, socketTimeoutMillis: 300, applicationName: "ix-pool-test" });
    try {
      const pid = async () => (await db.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`)).rows[0]?.pid;
      const first = await pid();
      // Idle past the timeout: nothing was asked, so the connection is not taken for dead.
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await pid()).toBe(first);

      relay.freeze();
      const began = Date.now();
      const failure = await db.execute(sql`select 1`).then(() => null, (error: unknown) => error);
      const waitedMs = Date.now() - began;
      expect(isTransientDbError(failure)).toBe(true);
      expect(String((failure as Error).cause ?? failure)).toMatch(/no answer from PostgreSQL at 127\.0\.0\.1:\d+ within 300 ms/);
      expect(waitedMs).toBeGreaterThanOrEqual(290);
      expect(waitedMs).toBeLessThan(3_000);
      // The dead connection is gone from the pool; once the path is back, a new one serves.
      relay.thaw();
      const next = await pid();
      expect(next).not.toBe(first);
      expect(db.$client.totalCount).toBe(1);
    } finally {
      await db.close();
      await relay.close();
    }
  });

  test("a session cut off inside a transaction is ended by the server, so its row locks are released", async ({ database }) => {
    const relay = await silentRelay(new URL(database.url));
    const db = connect(relay.url, { max: 1, socketTimeoutMillis: 500, applicationName: "ix-pool-test" });
    const admin = database.connect({ max: 1 });
    try {
      let backend = 0;
      const failure = await db
        .transaction(async (tx) => {
          backend = (await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`)).rows[0]?.pid ?? 0;
          await tx.execute(sql`select pg_advisory_xact_lock(18)`);
          relay.freeze();
          await tx.execute(sql`select 1`);
        })
        .then(() => null, (error: unknown) => error);
      expect(isTransientDbError(failure)).toBe(true);
      // The server heard nothing inside the transaction for 500 ms (idle_in_transaction_session_timeout): it ended the
      // session, and the lock is free again, although the client's socket to it was never closed by the relay.
      await waitFor(
        "the cut-off session to be ended by the server",
        async () => (await admin.execute<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity where pid = ${backend}`)).rows[0]?.n === 0,
        { timeoutMs: 5_000 },
      );
      const locked = await admin.execute<{ got: boolean }>(sql`select pg_try_advisory_lock(18) as got`);
      expect(locked.rows[0]?.got).toBe(true);
      await admin.execute(sql`select pg_advisory_unlock(18)`);
    } finally {
      await db.close();
      await relay.close();
    }
  });
});
