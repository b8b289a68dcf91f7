import type { BenchResults } from "./run.ts";
import { round } from "./stats.ts";

function pad(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ");
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => pad(r, widths).trimEnd()).join("\n");
}

const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${round(a / b).toFixed(2)}×` : "n/a");

/**
 * The human summary: each system's figures, then ix divided by each peer.
 * Throughput ratios above 1 favour ix; for latency, below 1 favours ix.
 */
export function ratioTable(results: BenchResults): string {
  const lines: string[] = [];
  lines.push(
    table([
      ["system", "enqueue jobs/s", "process jobs/s", "latency p50 ms", "latency p99 ms", "process CPU µs/job: Node + PostgreSQL"],
      ...results.systems.map((s) => [
        s.system,
        String(s.enqueue_jobs_per_s),
        String(s.process_jobs_per_s),
        String(s.latency_p50_ms),
        String(s.latency_p99_ms),
        `${s.node_cpu_us_per_job} + ${s.postgres_cpu_us_per_job ?? "?"}`,
      ]),
    ]),
  );
  const ix = results.systems.find((s) => s.system === "ix");
  const peers = results.systems.filter((s) => s.system !== "ix");
  if (ix && peers.length > 0) {
    lines.push(
      "",
      table([
        ["ix / peer", "enqueue (>1 better)", "process (>1 better)", "latency p50 (<1 better)", "latency p99 (<1 better)"],
        ...peers.map((p) => [
          p.system,
          ratio(ix.enqueue_jobs_per_s, p.enqueue_jobs_per_s),
          ratio(ix.process_jobs_per_s, p.process_jobs_per_s),
          ratio(ix.latency_p50_ms, p.latency_p50_ms),
          ratio(ix.latency_p99_ms, p.latency_p99_ms),
        ]),
      ]),
    );
  }
  const post = results.http.find((h) => h.route === "POST /jobs");
  if (post && results.pgbench) {
    lines.push("", `HTTP POST /jobs / pgbench single-row insert: ${ratio(post.requests_per_s, results.pgbench.inserts_per_s)} (goal ≥ 0.50×)`);
  }
  const batch = results.http.find((h) => h.route === "POST /jobs/batch");
  if (batch?.jobs_per_s !== undefined) {
    lines.push(`HTTP POST /jobs/batch: ${Math.round(batch.jobs_per_s)} jobs/s in batches of 1,000 (goal ≥ 20,000)`);
  }
  if (results.clients.length > 0) {
    lines.push(
      "",
      table([
        ["pending jobs over", "submit jobs/s", "claim 1 p50 ms", "claim 1 p99 ms", "claim of C p50 ms", "claim of C p99 ms"],
        ...results.clients.map((r) => [
          `${r.clients} client${r.clients === 1 ? "" : "s"}`,
          String(r.submit_jobs_per_s),
          String(r.claim_1_p50_ms),
          String(r.claim_1_p99_ms),
          String(r.claim_batch_p50_ms),
          String(r.claim_batch_p99_ms),
        ]),
      ]),
    );
  }
  const fair = results.fairness;
  if (fair) {
    lines.push(
      "",
      `Fairness: A's ${fair.a_jobs} jobs pending, then B's ${fair.b_jobs}; ${fair.loops} loops claiming one job at a time: ` +
        `${fair.a_started_before_b_last} of A's started before B's last; ` +
        `B submitting while A's backlog is worked: ${fair.busy_a_started_after_b_submitted} of A's started after B's submission and before B's last`,
    );
  }
  lines.push(`(bench took ${results.duration_s} s)`);
  return lines.join("\n");
}
