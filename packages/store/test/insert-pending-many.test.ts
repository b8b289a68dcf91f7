import { describe, expect } from "vitest";
import { jobs, sql } from "../src/index.ts";
import { listenFor, request, test } from "./fixtures.ts";

async function rowCount(db: Parameters<typeof jobs.get>[0]): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
  return result.rows[0]?.n ?? -1;
}

describe("insertPendingMany", () => {
  test("mixed new, existing and repeated keys: results in input order, the first item of a key wins", async ({
    database: { db },
  }) => {
    const existing = await jobs.insertPending(db, { request: request(), callbackUrl: "https://old.example/hook" });
    const fresh = request();
    const repeated = request();
    const items = [
      { request: fresh },
      { request: repeated, callbackUrl: "https://first.example/hook" },
      { request: existing.job.request, callbackUrl: "https://ignored.example/hook" },
      { request: repeated, callbackUrl: "https://second.example/hook" },
      { request: request({ ix_client_id: "other-svc", request_id: repeated.request_id }) },
    ];

    const results = await jobs.insertPendingMany(db, items);

    expect(results.map((r) => r.created)).toEqual([true, true, false, false, true]);
    expect(results.map((r) => [r.job.client_id, r.job.request_id])).toEqual(
      items.map((i) => [i.request.ix_client_id, i.request.request_id]),
    );
    expect(results[2]?.job).toEqual(existing.job);
    expect(results[2]?.job.callback_url).toBe("https://old.example/hook");
    // The repeat inside the batch gets the first item's row: same job, its callback_url.
    expect(results[3]?.job).toEqual(results[1]?.job);
    expect(results[1]?.job.callback_url).toBe("https://first.example/hook");
    // The same request_id from another client is another job.
    expect(results[4]?.job.job_id).not.toBe(results[1]?.job.job_id);
    for (const r of results) {
      expect(r.job.ix_id).toMatch(/^[0-9a-f]{16}$/);
      expect(r.job.request.ix_id).toBe(r.job.ix_id);
      expect(await jobs.get(db, r.job.job_id)).toEqual(r.job);
    }
    expect(new Set(results.map((r) => r.job.ix_id)).size).toBe(4);
    expect(await rowCount(db)).toBe(4);
  });

  test("an empty batch touches nothing", async ({ database: { db } }) => {
    expect(await jobs.insertPendingMany(db, [])).toEqual([]);
    expect(await rowCount(db)).toBe(0);
  });

  test("a batch wakes listeners once, and a batch creating nothing not at all", async ({ database: { db, url } }) => {
    const listening = await listenFor(url, jobs.PENDING_CHANNEL);
    try {
      const batch = [request(), request(), request()].map((r) => ({ request: r }));
      expect((await jobs.insertPendingMany(db, batch)).every((r) => r.created)).toBe(true);
      expect((await jobs.insertPendingMany(db, batch)).some((r) => r.created)).toBe(false);
      await listening.caughtUp();
      expect(listening.heard.map((n) => n.payload)).toEqual([""]);
    } finally {
      await listening.close();
    }
  });

  test("inside a rolled-back transaction no row of the batch survives", async ({ database: { db } }) => {
    const batch = [request(), request()].map((r) => ({ request: r }));
    await expect(
      db.transaction(async (tx) => {
        await jobs.insertPendingMany(tx, batch);
        throw new Error("caller aborts");
      }),
    ).rejects.toThrow("caller aborts");
    expect(await rowCount(db)).toBe(0);
  });

  test("a batch waiting on another transaction's uncommitted key cannot deadlock with it, and returns its row", async ({
    database,
  }) => {
    const { db } = database;
    const other = database.connect({ max: 1 });
    const a = request({ request_id: "a" });
    const b = request({ request_id: "b" });
    let batch: Promise<jobs.InsertPendingResult[]> | undefined;
    const held = await db.transaction(async (tx) => {
      const [first] = await jobs.insertPendingMany(tx, [{ request: a }]);
      // The batch lists b before a. Inserted in that order it would take b and then
      // wait for this transaction's a, and this transaction's insert of b below would
      // wait for the batch: a deadlock PostgreSQL breaks by failing one of them.
      batch = jobs.insertPendingMany(other, [{ request: b }, { request: a }]);
      batch.catch(() => undefined); // awaited below; keeps the rejection from being unhandled meanwhile
      const deadline = Date.now() + 10_000;
      for (;;) {
        const waiting = await db.execute<{ n: number }>(
          sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        );
        if ((waiting.rows[0]?.n ?? 0) > 0) break;
        if (Date.now() > deadline) throw new Error("the batch never waited on this transaction's row");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const [second] = await jobs.insertPendingMany(tx, [{ request: b }]);
      return [first, second];
    });
    const results = await batch!;
    expect(held.map((r) => r?.created)).toEqual([true, true]);
    expect(results.map((r) => r.created)).toEqual([false, false]);
    expect(results.map((r) => r.job)).toEqual([held[1]?.job, held[0]?.job]);
    expect(await rowCount(db)).toBe(2);
  });

  test("50 concurrent batches from separate connections over overlapping keys: one row per key, one job_id per key for every caller", async ({
    database,
  }) => {
    const pool = database.connect({ max: 50 });
    const keys = Array.from({ length: 40 }, () => request());
    // Each batch takes 20 of the 40 keys from its own offset, in its own order
    // (every other batch reversed), with its own callback_url.
    const batches = Array.from({ length: 50 }, (_, b) => {
      const slice = Array.from({ length: 20 }, (_, i) => keys[(b * 7 + i) % keys.length]!);
      if (b % 2 === 1) slice.reverse();
      return slice.map((r) => ({ request: r, callbackUrl: `https://hooks.example/${b}` }));
    });
    const results = await Promise.all(batches.map((batch) => jobs.insertPendingMany(pool, batch)));

    const jobIdOf = new Map<string, Set<string>>();
    const creations = new Map<string, number>();
    results.forEach((batchResults, b) => {
      batchResults.forEach((r, i) => {
        expect(r.job.request_id).toBe(batches[b]![i]!.request.request_id);
        const ids = jobIdOf.get(r.job.request_id) ?? new Set();
        ids.add(r.job.job_id);
        jobIdOf.set(r.job.request_id, ids);
        if (r.created) creations.set(r.job.request_id, (creations.get(r.job.request_id) ?? 0) + 1);
      });
    });
    const covered = new Set(batches.flat().map((i) => i.request.request_id));
    expect(jobIdOf.size).toBe(covered.size);
    for (const ids of jobIdOf.values()) expect(ids.size).toBe(1);
    for (const key of covered) expect(creations.get(key)).toBe(1);
    expect(await rowCount(database.db)).toBe(covered.size);
    // Every stored row carries the callback_url of the batch that created it.
    for (const batchResults of results) {
      for (const r of batchResults) {
        const stored = await jobs.get(database.db, r.job.job_id);
        expect(stored?.callback_url).toBe(r.job.callback_url);
      }
    }
    const backends = await database.db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_stat_activity where datname = current_database()`,
    );
    // Proof the batches ran on many connections at once, not one after another on one.
    expect(backends.rows[0]?.n).toBeGreaterThan(10);
  });
});
