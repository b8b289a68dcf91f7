import { describe, expect } from "vitest";
import { sql, workers } from "../src/index.ts";
import { test } from "./fixtures.ts";

const DAY_MS = 86_400_000;

describe("the worker registry", () => {
  const register = (db: Parameters<typeof workers.registerWorker>[0], id: string, useCases: string[]) =>
    workers.registerWorker(db, { id, host: "h", pid: 1, useCases, concurrency: 1 });
  const ids = {
    fresh: "00000000-0000-4000-8000-000000000001",
    week: "00000000-0000-4000-8000-000000000002",
    month: "00000000-0000-4000-8000-000000000003",
  };

  test("knownUseCases counts workers seen within the window; pruneStale deletes exactly the others", async ({ database: { db } }) => {
    await register(db, ids.fresh, ["a"]);
    await register(db, ids.week, ["b", "a"]);
    await register(db, ids.month, ["c"]);
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '6 days 23 hours' where id = ${ids.week}`);
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '30 days' where id = ${ids.month}`);

    expect(await workers.knownUseCases(db, { withinDays: 7 })).toEqual(["a", "b"]);
    expect(await workers.pruneStale(db, { withinDays: 7 })).toBe(1);
    // What the API accepts is the same after the prune: only rows that no longer counted are gone.
    expect(await workers.knownUseCases(db, { withinDays: 7 })).toEqual(["a", "b"]);
    expect(await workers.knownUseCases(db, { withinDays: 3_650 })).toEqual(["a", "b"]);
    expect(await workers.pruneStale(db, { withinDays: 7 })).toBe(0);

    // An hour later (by the given clock) the week-old worker falls out of the window too.
    const later = new Date(Date.now() + 2 * 3_600_000);
    expect(await workers.knownUseCases(db, { withinDays: 7, now: later })).toEqual(["a"]);
    expect(await workers.pruneStale(db, { withinDays: 7, now: later })).toBe(1);
    const left = await db.execute<{ id: string }>(sql`select id from ix_workers order by id`);
    expect(left.rows.map((row) => row.id)).toEqual([ids.fresh]);
  });

  test("a pruned worker that comes back registers again with its next refresh", async ({ database: { db } }) => {
    await register(db, ids.week, ["a"]);
    expect(await workers.pruneStale(db, { withinDays: 1, now: new Date(Date.now() + 2 * DAY_MS) })).toBe(1);
    expect(await workers.knownUseCases(db, { withinDays: 1 })).toEqual([]);
    await register(db, ids.week, ["a"]);
    expect(await workers.knownUseCases(db, { withinDays: 1 })).toEqual(["a"]);
  });

  test("a window that is not positive is refused and deletes nothing", async ({ database: { db } }) => {
    await register(db, ids.fresh, ["a"]);
    for (const withinDays of [0, -1, Number.NaN]) {
      await expect(workers.pruneStale(db, { withinDays })).rejects.toThrow(RangeError);
      await expect(workers.knownUseCases(db, { withinDays })).rejects.toThrow(`withinDays must be positive, got ${withinDays}`);
    }
    expect(await workers.knownUseCases(db, { withinDays: 1 })).toEqual(["a"]);
  });
});
