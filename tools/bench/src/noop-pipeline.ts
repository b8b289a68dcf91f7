// The bench's no-op pipeline as a module, so a worker with thread isolation
// (`pnpm bench --isolation thread`) loads it in its pipeline threads.
export default { name: "bench_noop", run: () => ({}) };
