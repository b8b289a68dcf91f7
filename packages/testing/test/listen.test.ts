import { sql } from "@ix/store";
import { describe, expect } from "vitest";
import { listenFor, test } from "../src/index.ts";

describe("listenFor", () => {
  test("collects its channel's notifications in commit order; caughtUp waits for every earlier commit and is not heard itself", async ({
    database: { db, url },
  }) => {
    const listening = await listenFor(url, "ix_test_Channel");
    try {
      await db.execute(sql`select pg_notify('ix_test_Channel', 'first')`);
      await db.execute(sql`select pg_notify('ix_test_other', 'not ours')`);
      await db.execute(sql`select pg_notify('ix_test_Channel', '')`);
      await listening.caughtUp();
      expect(listening.heard).toEqual([
        { channel: "ix_test_Channel", payload: "first" },
        { channel: "ix_test_Channel", payload: "" },
      ]);
      await listening.caughtUp();
      expect(listening.heard).toHaveLength(2);
    } finally {
      await listening.close();
    }
  });
});
