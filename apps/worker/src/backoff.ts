/**
 * Delay before retrying after failed attempt `attempt` (1-based): exponential
 * with full jitter, uniform in [0, min(max, base × 2^(attempt−1))], so
 * receivers recovering from an outage are not hit by every job at once.
 * `random` is injected for deterministic tests.
 */
export function retryDelaySeconds(
  attempt: number,
  { baseSeconds, maxSeconds }: { baseSeconds: number; maxSeconds: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt - 1));
  return ceiling * random();
}
