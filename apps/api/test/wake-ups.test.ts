// Every API write that makes jobs pending wakes LISTENing workers after its commit (docs/ARCHITECTURE.md, "Wake-ups").
import { jobs, pg } from "@ix/store";
import { insertJob, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { appFor, body } from "./fixtures.ts";

describe("wake-ups", () => {
  test("POST /jobs, POST /jobs/batch and a retry each wake a listener that then finds the job", async ({ database: { db, url } }) => {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    const app = await appFor(db);
    try {
      // What a woken worker would see: the pending jobs, read on the listener's own connection on arrival.
      const seen: Array<Promise<number>> = [];
      listener.on("notification", () => {
        seen.push(listener.query("select count(*)::int as n from ix_jobs where status = 'pending'").then((r) => r.rows[0].n));
      });
      await listener.query(`listen ${jobs.PENDING_CHANNEL}`);
      const heard = async (): Promise<number[]> => {
        // The wake-up follows the answer; once it is out, a round trip on the listener delivers it.
        await jobs.pendingWakeups(db).settled();
        await listener.query("select 1");
        return Promise.all(seen.splice(0));
      };

      expect((await app.inject({ method: "POST", url: "/jobs", payload: body() })).statusCode).toBe(201);
      expect(await heard()).toEqual([1]);
      const batch = await app.inject({ method: "POST", url: "/jobs/batch", payload: { jobs: [body(), body()] } });
      expect(batch.statusCode).toBe(200);
      expect(await heard()).toEqual([3]);
      const failed = await insertJob(db, { status: "error" });
      expect((await app.inject({ method: "POST", url: `/jobs/${failed.job_id}/retry` })).statusCode).toBe(200);
      expect(await heard()).toEqual([4]);
      // Nothing new, nothing to wake for.
      const again = await app.inject({ method: "POST", url: "/jobs/batch", payload: { jobs: [] } });
      expect(again.statusCode).toBe(400);
      expect(await heard()).toEqual([]);
    } finally {
      await app.close();
      await listener.end();
    }
  });
});
