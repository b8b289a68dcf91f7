import type { CpuPerJob } from "../cpu.ts";

/** The workload every queue runs (BENCHMARKS.md, Method), on a database of its own. */
export interface Workload {
  /** Jobs enqueued and drained. */
  n: number;
  /** Concurrent enqueue loops and worker concurrency. */
  c: number;
  /** Sequential jobs for the latency run. */
  l: number;
}

export interface SystemResult extends CpuPerJob {
  system: string;
  enqueue_jobs_per_s: number;
  process_jobs_per_s: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
}

/** A process phase: jobs/s from start to the last job stored, and the CPU it cost per job (./cpu.ts). */
export interface ProcessRun extends CpuPerJob {
  jobsPerSecond: number;
}

/** One queue under test. Each phase starts from an empty queue and leaves it drained. */
export interface QueueSystem {
  readonly name: string;
  /** n jobs, one insert each, from c concurrent loops; returns jobs/s. */
  enqueue(workload: Workload): Promise<number>;
  /** n jobs already pending, drained by a worker of concurrency c with a no-op handler, start to last job stored. */
  process(workload: Workload): Promise<ProcessRun>;
  /** On an idle queue, l jobs one after another: ms from the insert call to the handler starting. */
  latency(workload: Workload): Promise<number[]>;
  close(): Promise<void>;
}

/** Resolves waiters by key: the handler side calls `arrive`, the timing side awaits `next`. */
export class Arrivals {
  readonly #waiting = new Map<string, (at: number) => void>();
  readonly #early = new Map<string, number>();

  arrive(key: string): void {
    const at = performance.now();
    const waiter = this.#waiting.get(key);
    if (waiter) {
      this.#waiting.delete(key);
      waiter(at);
    } else this.#early.set(key, at);
  }

  next(key: string): Promise<number> {
    const early = this.#early.get(key);
    if (early !== undefined) {
      this.#early.delete(key);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => this.#waiting.set(key, resolve));
  }
}

/** Awaits a promise for at most `ms`, naming what did not happen. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
