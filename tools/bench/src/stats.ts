/** Nearest-rank percentile of `values` (0 < p ≤ 100); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** Rounded for the report: 3 significant digits are all a 2-core machine's noise allows. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(3));
}

export function perSecond(count: number, startedMs: number, endedMs: number): number {
  return count / ((endedMs - startedMs) / 1000);
}

/** Runs `loops` concurrent loops that share `total` iterations; each iteration gets its global index. */
export async function concurrentLoops(total: number, loops: number, body: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(loops, total) }, async () => {
      for (let i = next++; i < total; i = next++) await body(i);
    }),
  );
}

/** Counts handler runs: `done` resolves on the `total`-th call of `ran`. */
export function runCounter(total: number): { ran(): void; done: Promise<void> } {
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    ran() {
      if (++count === total) finish();
    },
    done,
  };
}
