export { runBench, SYSTEMS, BENCH_DEFAULTS, DEFAULT_PGBENCH_PATH, type BenchOptions, type BenchResults, type IxProcessResult, type SystemName } from "./run";
export type { SystemResult, Workload } from "./systems/system";
export type { HttpResult, PgbenchResult } from "./http";
export type { ScaleResult } from "./scale";
