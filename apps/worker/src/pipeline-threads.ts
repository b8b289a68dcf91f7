import { once } from "node:events";
import { MessageChannel, type Worker as Thread } from "node:worker_threads";
import type { Job } from "@ix/contracts";
import type { Logger } from "pino";
import { Piscina } from "piscina";
import { type Execution, messageOf } from "./pipeline";
import type { Attempt } from "./pipeline-run";
import type { RunTask, ThreadData, ThreadMessage, ThreadTask } from "./pipeline-thread";

const THREAD_FILE = new URL("./pipeline-thread-boot.mjs", import.meta.url).href;

/** How long a terminated thread may take to exit before its slot is given up on (and a warning logged). */
const EXIT_WAIT_MS = 10_000;

export interface PipelineThreadsOptions {
  /** Threads in the pool: the worker's concurrency, so a run never waits for a thread. */
  threads: number;
  /** Module URLs each thread loads besides the built-ins. */
  modules: string[];
  /** IX_MAX_RESULT_BYTES, checked inside the thread. */
  maxResultBytes: number;
  log: Logger;
}

/**
 * A pool of worker threads (piscina) that run pipelines off the worker's
 * event loop (IX_PIPELINE_ISOLATION=thread). Aborting a run posts to its
 * thread, whose wrapper aborts the pipeline's signal; killing it terminates
 * the thread (piscina's per-task signal) and piscina starts a replacement.
 * Threads start on first use or `ready()`, and `close()` terminates them all.
 */
export class PipelineThreads {
  readonly #options: PipelineThreadsOptions;
  #pool: Piscina<ThreadTask, Execution | "pong"> | null = null;
  #closed = false;

  constructor(options: PipelineThreadsOptions) {
    this.#options = options;
  }

  #getPool(): Piscina<ThreadTask, Execution | "pong"> {
    if (this.#closed) throw new Error("pipeline threads are closed");
    if (this.#pool === null) {
      const workerData: ThreadData = { modules: this.#options.modules, maxResultBytes: this.#options.maxResultBytes };
      this.#pool = new Piscina({
        filename: THREAD_FILE,
        // All threads up front, and a replacement as soon as one is terminated: a run never waits for a thread to boot.
        minThreads: this.#options.threads,
        maxThreads: this.#options.threads,
        idleTimeout: Number.POSITIVE_INFINITY,
        workerData,
      });
      // A thread that dies outside a task (its task, if any, is rejected too) must not crash the worker.
      this.#pool.on("error", (error: unknown) => this.#options.log.error({ err: error }, "pipeline thread failed"));
    }
    return this.#pool;
  }

  /** Starts the threads and waits until each has loaded its pipelines; rejects with a module's load error. */
  async ready(): Promise<void> {
    const pool = this.#getPool();
    await Promise.all(Array.from({ length: this.#options.threads }, () => pool.run({ ping: true })));
  }

  /** Runs `name` for `job` in a thread. */
  start(name: string, job: Job, log: Logger): Attempt {
    const pool = this.#getPool();
    const { port1, port2 } = new MessageChannel();
    const kill = new AbortController();
    let threadId: number | null = null;
    let exited: Promise<void> | null = null;
    let begin: () => void = () => {};
    const began = new Promise<void>((resolve) => {
      begin = resolve;
    });
    port1.on("message", (message: ThreadMessage) => {
      if ("started" in message) {
        threadId = message.started;
        begin();
      } else forwardLog(log, message.log);
    });
    // The port must never keep the process alive; the thread closes its end when the run ends.
    port1.unref();

    const task: RunTask = { name, request: job.request, logLevel: log.level, port: port2 };
    const running = pool.run(task, { transferList: [port2], signal: kill.signal }) as Promise<Execution>;
    const outcome = running.then(
      (execution) => execution,
      (error: unknown): Execution => {
        if (kill.signal.aborted) return { ok: false, error: `pipeline "${name}" was terminated` };
        log.error({ err: error }, "pipeline thread died during the run");
        return { ok: false, error: `pipeline "${name}" failed: its thread died (${messageOf(error)})` };
      },
    );
    // The start message and the outcome travel on different ports: whichever arrives first means it began.
    void outcome.then(begin);
    const stopped = outcome.then(async () => {
      if (exited) await exited;
    });
    return {
      outcome,
      began,
      abort(reason) {
        if (!kill.signal.aborted) port1.postMessage({ abort: reason.message });
      },
      kill: () => {
        if (kill.signal.aborted) return true;
        // The thread running this task, found before piscina removes it from the pool: its exit is when the run has stopped.
        const thread = threadId === null ? undefined : this.#pool?.threads.find((t: Thread) => t.threadId === threadId);
        if (thread) exited = exitOf(thread, log);
        else port1.close(); // still queued: no thread ever took the port
        kill.abort(new Error("killed after the kill grace"));
        return true;
      },
      stopped,
    };
  }

  /** Terminates every thread, running or idle, and waits for them to exit. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.destroy();
    this.#pool = null;
  }
}

async function exitOf(thread: Thread, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), EXIT_WAIT_MS);
  });
  const result = await Promise.race([once(thread, "exit").then(() => "exited" as const), late]);
  clearTimeout(timer);
  if (result === "late") log.warn({ waitedMs: EXIT_WAIT_MS }, "a terminated pipeline thread has not exited; its slot is released anyway");
}

/** Re-emits a record the thread's logger wrote through the worker's logger, which adds the job's bindings. */
function forwardLog(log: Logger, line: string): void {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  const { level, msg, ...fields } = record;
  const label = typeof level === "number" ? log.levels.labels[level] : undefined;
  const method = label !== undefined && label in log ? (log[label as keyof Logger] as Logger["info"]) : log.info;
  method.call(log, fields, typeof msg === "string" ? msg : undefined);
}
