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
      ["system", "enqueue jobs/s", "process jobs/s", "latency p50 ms", "latency p99 ms"],
      ...results.systems.map((s) => [s.system, String(s.enqueue_jobs_per_s), String(s.process_jobs_per_s), String(s.latency_p50_ms), String(s.latency_p99_ms)]),
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
  lines.push(`(bench took ${results.duration_s} s)`);
  return lines.join("\n");
}
