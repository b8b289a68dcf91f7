import { test } from "@ix/testing";
import { sql } from "@ix/store";
import { describe, expect } from "vitest";
import { createWorker, definePipeline } from "../src/index.ts";
import { submit, testConfig, waitFor } from "./fixtures/index.ts";

/** A pipeline held until released, counting runs and the most running at once. */
function gated() {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  const state = { runs: 0, running: 0, peak: 0 };
  const pipeline = definePipeline({
    name: "gated",
    run: async () => {
      state.runs++;
      state.running++;
      state.peak = Math.max(state.peak, state.running);
      await gate;
      state.running--;
      return {};
    },
  });
  return { pipeline, state, open: () => open() };
}

async function statusCounts(db: Parameters<typeof submit>[0]): Promise<Record<string, number>> {
  const { rows } = await db.execute<{ status: string; n: string }>(sql`select status, count(*) as n from ix_jobs group by status`);
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

describe("prefetch (the local queue)", () => {
  test("one claim takes concurrency + prefetch jobs, yet no more than concurrency pipelines run at once", async ({ database: { db } }) => {
    for (let i = 0; i < 12; i++) await submit(db, { use_case: "gated", request_id: `q${i}` });
    const g = gated();
    const worker = createWorker({ db, pipelines: [g.pipeline], config: testConfig({ concurrency: 2, prefetch: 6 }) });

    const once = worker.runOnce();
    await waitFor("two pipelines running", () => g.state.running === 2);
    expect(await statusCounts(db)).toEqual({ running: 8, pending: 4 });
    expect(g.state.runs).toBe(2);

    g.open();
    expect(await once).toBe(8);
    expect(g.state.peak).toBe(2);
    const { rows } = await db.execute<{ n: string }>(sql`select count(*) as n from ix_jobs where status = 'done' and response is not null`);
    expect(Number(rows[0]?.n)).toBe(8);
    expect(await statusCounts(db)).toEqual({ done: 8, pending: 4 });
  });

  test("a hard stop leaves queued jobs unstarted and running for the sweeper", async ({ database: { db } }) => {
    for (let i = 0; i < 5; i++) await submit(db, { use_case: "gated", request_id: `s${i}` });
    const g = gated();
    const worker = createWorker({ db, pipelines: [g.pipeline], config: testConfig({ concurrency: 1, prefetch: 4 }) });
    await worker.start();
    await waitFor("one pipeline running", () => g.state.running === 1);

    const { abandonedJobs } = await worker.stop({ graceSeconds: 0.2 });
    expect(abandonedJobs).toBe(5);
    g.open();
    await waitFor("the started pipeline to return", () => g.state.running === 0);
    // Released slots pass to the queued jobs within a tick or two; none may start.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    // Only the one that had a slot ever ran; the four queued never started.
    expect(g.state.runs).toBe(1);
    expect(await statusCounts(db)).toEqual({ running: 5 });
  });
});
