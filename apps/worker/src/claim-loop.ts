import { pause } from "./pause";

export const FIRST_DB_RETRY_MS = 100;
export const MAX_DB_RETRY_MS = 5_000;

export interface ClaimLoop {
  /** Work may be waiting (a NOTIFY, the poll, a sweep): mark it so and run the loop. */
  wake(): void;
  /** Runs the loop if it is not running: after room frees up, say. Claims only while work may be waiting. */
  run(): Promise<void>;
}

/**
 * The loop that claims jobs, and the one that claims due callbacks (spec §5):
 * while work may be waiting and there is room, claim up to the room. "May be
 * waiting" is cleared only by a claim that came back short with no wake-up
 * since it began, so a wake-up that races a claim is never lost. A failed
 * claim (the database is away) is reported and retried with backoff until
 * `signal` aborts.
 */
export function createClaimLoop({
  room,
  claim,
  isActive,
  signal,
  onError,
}: {
  /** How many may be claimed now; 0 or less ends this pass (whoever frees room calls run()). */
  room(): number;
  /** Claims up to `limit`; resolves with how many it got. */
  claim(limit: number): Promise<number>;
  /** Started and not stopping. */
  isActive(): boolean;
  signal: AbortSignal;
  onError(error: unknown, retryInMs: number): void;
}): ClaimLoop {
  let maybeWaiting = true;
  let wakeups = 0;
  let running = false;

  async function run(): Promise<void> {
    if (running || !isActive()) return;
    running = true;
    let delay = FIRST_DB_RETRY_MS;
    try {
      while (maybeWaiting && isActive()) {
        const limit = room();
        if (limit <= 0) return;
        const seen = wakeups;
        try {
          const claimed = await claim(limit);
          delay = FIRST_DB_RETRY_MS;
          if (claimed < limit && wakeups === seen) maybeWaiting = false;
        } catch (error) {
          onError(error, delay);
          await pause(delay, signal);
          delay = Math.min(delay * 2, MAX_DB_RETRY_MS);
        }
      }
    } finally {
      running = false;
    }
  }

  return {
    wake() {
      wakeups++;
      maybeWaiting = true;
      void run();
    },
    run,
  };
}
