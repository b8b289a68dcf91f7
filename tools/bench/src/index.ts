export { runBench, SYSTEMS, BENCH_DEFAULTS, DEFAULT_PGBENCH_PATH, type BenchOptions, type BenchResults, type IxProcessResult, type SystemName } from "./run.ts";
export type { SystemResult, Workload } from "./systems/system.ts";
export type { HttpResult, PgbenchResult } from "./http.ts";
export type { ScaleResult } from "./scale.ts";
