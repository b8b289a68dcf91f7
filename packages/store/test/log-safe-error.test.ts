import { describe, expect } from "vitest";
import { sql } from "../src/index.ts";
import { logSafeError, logSerializers, logText, logUrl } from "../src/log-safe-error.ts";
import { test } from "./fixtures.ts";

const SECRET = "token=SECRET-7f3a";
const TEXT = "Alice's confidential invoice text";

describe("logSafeError", () => {
  test("a failed Drizzle query keeps its SQLSTATE and statement, never its parameters or quoted values", async ({
    database: { db },
  }) => {
    const error = await db
      .execute(sql`insert into ix_jobs (ix_id, client_id, request_id, request, callback_url, use_case)
        values (${"not-hex"}, ${"alice"}, ${"r1"}, ${JSON.stringify({ texts: [TEXT] })}::jsonb, ${`https://h.example/cb?${SECRET}`}, 'x')`)
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).not.toBeNull();
    // The raw error carries the client's data: this is what must not reach a log.
    expect(String((error as Error).message)).toContain(SECRET);
    const logged = JSON.stringify(logSafeError(error));
    expect(logged).not.toContain(SECRET);
    expect(logged).not.toContain(TEXT);
    expect(logSafeError(error)).toMatchObject({
      message: "database query failed",
      code: "23514",
      statement: "insert into ix_jobs",
      cause: { code: "23514", constraint: "ix_jobs_ix_id_format" },
    });
  });

  test("a value quoted in a PostgreSQL message is masked", async ({ database: { db } }) => {
    const error = await db.execute(sql`select ${"secret-id"}::uuid`).then(
      () => null,
      (e: unknown) => e,
    );
    const logged = logSafeError(error);
    expect(JSON.stringify(logged)).not.toContain("secret-id");
    expect(logged.cause?.message).toBe('invalid input syntax for type uuid: "…"');
    expect(logged.code).toBe("22P02");
  });

  test("a cyclic cause chain ends after a bounded depth", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    const b = new Error("b", { cause: a });
    a.cause = b;
    let depth = 0;
    for (let e: { cause?: unknown } | undefined = logSafeError(a); e; e = e.cause as typeof e) depth++;
    expect(depth).toBe(6);
  });

  test("an error whose properties throw is still logged, by what could be read", () => {
    const hostile = new Error("payload too large");
    Object.defineProperty(hostile, "stack", {
      get() {
        throw new Error("no stack for you");
      },
    });
    Object.assign(hostile, { code: "E_BIG" });
    expect(logSerializers.err(hostile)).toEqual({ type: "unserializable", message: "payload too large", code: "E_BIG" });
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    expect(logSafeError(revoked.proxy)).toEqual({ type: "unserializable", message: "the error could not be serialised" });
  });

  test("URLs are logged by origin and path; free texts are bounded", () => {
    expect(logUrl("https://user:pw@hooks.example:8443/ix/cb?token=SECRET#frag")).toBe("https://hooks.example:8443/ix/cb");
    expect(logUrl("not a url")).toBe("(not a URL)");
    expect(logUrl(null)).toBeNull();
    expect(logText("a".repeat(500))).toBe(`${"a".repeat(200)}…`);
    expect(logText("short")).toBe("short");
  });
});
