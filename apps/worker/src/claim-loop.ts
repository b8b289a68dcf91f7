import { retryWhileDbAway } from "./db-retry.ts";

export interface ClaimLoop {
  /** Work may be waiting (a NOTIFY, the poll, a rescue): mark it so and run the loop. */
  wake(): void;
  /** Runs the loop if it is not running: after room frees up, say. Claims only while work may be waiting. */
  run(): Promise<void>;
}

/**
 * The loop that claims jobs, and the one that claims due callbacks: while
 * work may be waiting and there is room, claim up to the room. "May be
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
  /** A failed claim; `retryInMs` is absent for the last one, cut off by `signal`. */
  onError(error: unknown, retryInMs?: number): void;
}): ClaimLoop {
  let maybeWaiting = true;
  let wakeups = 0;
  let running = false;

  /** One claim, if still active and there is room; false ends the loop. */
  async function claimOnce(): Promise<boolean> {
    if (!isActive()) return false;
    const limit = room();
    if (limit <= 0) return false;
    const seen = wakeups;
    const claimed = await claim(limit);
    if (claimed < limit && wakeups === seen) maybeWaiting = false;
    return true;
  }

  async function run(): Promise<void> {
    if (running || !isActive()) return;
    running = true;
    try {
      while (maybeWaiting) {
        // Room and activity are checked again before every retry: a stop or a full worker ends the loop.
        if (!(await retryWhileDbAway(claimOnce, { signal, onFailure: onError }))) return;
      }
    } catch (error) {
      // Only a stop ends the retrying; the claim it cut off is reported like the others.
      onError(error);
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
