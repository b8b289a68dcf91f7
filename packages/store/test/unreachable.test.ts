import { describe, expect, it } from "vitest";
import { connect, DatabaseUnreachableError, isTransientDbError, jobs, sql, unreachableDatabase } from "../src/index.ts";
import { logSafeError } from "../src/log-safe-error.ts";
import { freePort, test } from "./fixtures.ts";

const PASSWORD = "s3cret-pw-9d1e";

async function failure(run: () => Promise<unknown>): Promise<unknown> {
  return run().then(
    () => {
      throw new Error("expected a failure");
    },
    (error: unknown) => error,
  );
}

describe("a database that cannot be reached", () => {
  it("is reported as where it was expected, never as the statement that needed it, nor with the password", async () => {
    const port = await freePort(); // nothing listens there
    const db = connect(`postgres://ix:${PASSWORD}@127.0.0.1:${port}/ix`, { max: 1 });
    try {
      // A repo function (Drizzle query builder) and raw SQL both go through the pool.
      for (const error of [
        await failure(() => jobs.get(db, "00000000-0000-4000-8000-000000000000")),
        await failure(() => db.execute(sql`select 1`)),
      ]) {
        const unreachable = unreachableDatabase(error);
        expect(unreachable).toBeInstanceOf(DatabaseUnreachableError);
        expect(unreachable?.message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:${port}`);
        expect(unreachable?.code).toBe("ECONNREFUSED");
        // Still the transient failure the worker retries and the API answers 503 for.
        expect(isTransientDbError(error)).toBe(true);
        const logged = logSafeError(error);
        expect(logged).toMatchObject({ type: "DatabaseUnreachableError", message: `cannot connect to PostgreSQL at 127.0.0.1:${port}`, code: "ECONNREFUSED" });
        expect(logged.statement).toBeUndefined();
        const text = JSON.stringify(logged);
        expect(text).not.toContain(PASSWORD);
        expect(text).not.toMatch(/select|ix_jobs|database query failed/);
        // An operating condition, not a bug: no stack traces in the log.
        expect(text).not.toContain("stack");
      }
    } finally {
      await db.close();
    }
  });

  it("is transient when the network has no route to it (a partition), as when it refuses", () => {
    for (const code of ["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN"]) {
      const error = new DatabaseUnreachableError("10.77.0.1:5432", Object.assign(new Error(`connect ${code} 10.77.0.1:5432`), { code }));
      expect(isTransientDbError(error), code).toBe(true);
    }
  });

  it("names an IPv6 server in brackets", async () => {
    const port = await freePort();
    const db = connect(`postgres://ix:${PASSWORD}@[::1]:${port}/ix`, { max: 1 });
    try {
      const error = await failure(() => db.execute(sql`select 1`));
      expect(unreachableDatabase(error)?.message).toBe(`cannot connect to PostgreSQL at [::1]:${port}`);
    } finally {
      await db.close();
    }
  });

  test("a server that refuses the connection (unknown database) is unreachable too, and not retried as transient", async ({
    database: { url },
  }) => {
    const target = new URL(url);
    target.pathname = "/ix_no_such_database";
    const db = connect(target.toString(), { max: 1 });
    try {
      const error = await failure(() => db.execute(sql`select 1`));
      expect(unreachableDatabase(error)?.message).toBe(`cannot connect to PostgreSQL at ${target.hostname}:${target.port || 5432}`);
      expect(unreachableDatabase(error)?.code).toBe("3D000");
      expect(isTransientDbError(error)).toBe(false);
    } finally {
      await db.close();
    }
  });

  test("a reachable database is unaffected: queries run, errors keep their statement", async ({ database: { db } }) => {
    expect((await db.execute<{ one: number }>(sql`select 1 as one`)).rows).toEqual([{ one: 1 }]);
    const error = await failure(() => db.execute(sql`select * from ix_no_such_table`));
    expect(unreachableDatabase(error)).toBeUndefined();
    expect(logSafeError(error)).toMatchObject({ message: "database query failed", code: "42P01" });
  });
});
