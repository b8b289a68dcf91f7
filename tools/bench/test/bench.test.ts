import { inject } from "vitest";
import { expect, test } from "vitest";
import "@ix/testing";
import { runBench } from "../src/index.ts";

// A smoke run at a tiny size: it proves the harness drives every system end to
// end and that ix stored every response. Speed is never asserted: CI machines vary.
test("a smoke-sized bench runs every system, ix stores every response, and every figure is a finite positive number", async () => {
  const lines: string[] = [];
  const results = await runBench({
    databaseUrl: inject("ixTestServerUrl"),
    n: 200,
    c: 4,
    l: 20,
    httpSeconds: 1,
    scaleRows: [0, 1000],
    ixIsolation: ["inline", "thread"],
    out: (line) => lines.push(line),
    log: () => undefined,
  });

  expect(results.systems.map((s) => s.system)).toEqual(["ix", "graphile-worker", "pg-boss"]);
  for (const s of results.systems) {
    for (const value of [s.enqueue_jobs_per_s, s.process_jobs_per_s, s.latency_p50_ms, s.latency_p99_ms]) {
      expect(Number.isFinite(value) && value > 0, `${s.system}: ${JSON.stringify(s)}`).toBe(true);
    }
    // CPU per job: this process's, and the server's read from /proc (the server runs on this host here).
    expect(s.node_cpu_us_per_job, s.system).toBeGreaterThan(0);
    expect(s.postgres_cpu_us_per_job, s.system).toBeGreaterThanOrEqual(0);
  }
  expect(results.ix_process_check).toEqual({ jobs: 200, done_with_response: 200 });
  // ix's process phase ran once per isolation; with threads its pipelines ran in a pool started before the clock.
  expect(results.ix_process.map((r) => r.isolation)).toEqual(["inline", "thread"]);
  for (const r of results.ix_process) expect(Number.isFinite(r.process_jobs_per_s) && r.process_jobs_per_s > 0).toBe(true);
  expect(results.ix_process[1]?.thread_warmup_ms).toBeGreaterThan(0);

  expect(results.http.map((h) => h.route)).toEqual(["POST /jobs", "GET /jobs/{id}", "POST /jobs/batch"]);
  expect(results.http[2]?.jobs_per_s).toBeGreaterThan(0); // 1,000 jobs per request
  for (const h of results.http) {
    expect(h.requests_per_s).toBeGreaterThan(0);
    expect(h.errors + h.non_2xx, `${h.route} had failures`).toBe(0);
  }
  expect(results.scale.map((s) => s.terminal_rows)).toEqual([0, 1000]);
  for (const s of results.scale) expect(Number.isFinite(s.claim_p50_ms) && s.claim_p50_ms > 0).toBe(true);
  for (const s of results.scale) expect(Number.isFinite(s.capped_claim_p50_ms) && s.capped_claim_p50_ms > 0).toBe(true);
  // The capped, routed claim reads the use_case's pending jobs in turn order from the claim index and fetches them by primary key.
  expect(results.scale_explain).toContain("ix_jobs_claim_idx");
  expect(results.scale_explain).toContain("ix_jobs_pkey");
  expect(results.scale_explain).not.toMatch(/Seq Scan/);

  // n=200 pending jobs held by one client, then by 200 (1,000 capped at n); claims of 1 and of C.
  expect(results.clients.map((r) => r.clients)).toEqual([1, 200]);
  for (const r of results.clients) {
    for (const value of [r.submit_jobs_per_s, r.claim_1_p50_ms, r.claim_1_p99_ms, r.claim_batch_p50_ms, r.claim_batch_p99_ms]) {
      expect(Number.isFinite(value) && value > 0, JSON.stringify(r)).toBe(true);
    }
    expect(r.claim_batch).toBe(4);
  }
  // Fairness is an order, not a timing: B's 20 jobs take turns with A's backlog (100 here) instead of waiting behind it.
  expect(results.fairness).toMatchObject({ a_jobs: 100, b_jobs: 20, loops: 4 });
  expect(results.fairness?.a_started_before_b_last).toBeLessThan(50);
  expect(results.fairness?.busy_a_started_after_b_submitted).toBeLessThan(50);

  // One JSON line per system, then HTTP, pgbench (when installed), scale, clients and fairness lines, then the ratio table.
  const json = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { system: string });
  expect(json.filter((j) => ["ix", "graphile-worker", "pg-boss"].includes(j.system))).toHaveLength(3);
  expect(json.filter((j) => j.system === "ix-clients")).toHaveLength(2);
  expect(json.filter((j) => j.system === "ix-fairness")).toHaveLength(1);
  expect(lines.at(-1)).toContain("ix / peer");
}, 120_000);
