/**
 * Prints what a fault measured on one line, `[faults] <fault>: key=value …`,
 * so CI output carries the figures FAULTS.md quotes.
 */
export function printFigures(fault: string, figures: Record<string, number | string | boolean>): void {
  const parts = Object.entries(figures).map(([key, value]) => `${key}=${value}`);
  console.log(`[faults] ${fault}: ${parts.join(" ")}`);
}

/** A reproducible random source (mulberry32), so a failing run can be replayed from its printed seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
