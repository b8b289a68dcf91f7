import { Writable } from "node:stream";
import { test } from "@ix/testing";
import { pino } from "pino";
import { describe, expect } from "vitest";
import { appFor, body, expectProblem, jobCount } from "./fixtures";

/** A pino logger whose JSON lines are kept in memory. */
function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter((line) => line.length > 0));
      done();
    },
  });
  return { logger: pino({ level: "trace" }, stream), lines };
}

describe("logs never carry the client's documents or secrets", () => {
  test("a 503 caused by a statement timeout logs the cause, SQLSTATE and statement, not the submission", async ({ database }) => {
    const { logger, lines } = capturingLogger();
    const db = database.connect({ max: 2, statementTimeoutMillis: 300 });
    const app = await appFor(db, {}, { logger });
    const locker = await database.db.$client.connect();
    const text = "Confidential: ACME pays 1,234,567.89 EUR to account DE89370400440532013000";
    const token = "tok_9f8e7d6c5b4a3f2e1d0c";
    try {
      await locker.query("begin");
      await locker.query("lock table ix_jobs in access exclusive mode");
      const response = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: body({ context: { texts: [text] }, callback_url: `https://hooks.example.com/ix?token=${token}` }),
      });
      expectProblem(response, 503, "unavailable");
      await locker.query("rollback");

      const warning = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((entry) => entry.msg === "database unavailable; answering 503");
      expect(warning, lines.join("\n")).toBeDefined();
      // What an operator needs: which statement, which SQLSTATE, what PostgreSQL said.
      expect(warning?.err).toMatchObject({
        code: "57014",
        statement: "insert into ix_jobs",
        cause: { code: "57014", message: "canceling statement due to statement timeout" },
      });
      const everything = lines.join("\n");
      for (const secret of [token, "DE89370400440532013000", "ACME pays", "params:"]) expect(everything).not.toContain(secret);
      expect(await jobCount(database.db)).toBe(0);
    } finally {
      await locker.query("rollback").catch(() => undefined);
      locker.release();
      await app.close();
    }
  });
});
