import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { BroadcastChannel, type Worker as Thread } from "node:worker_threads";
import type { Job, TraceContext } from "@ix/contracts";
import type { Logger } from "pino";
import { Piscina } from "piscina";
import { type Execution, messageOf } from "./pipeline.ts";
import type { Attempt } from "./pipeline-run.ts";
import { type AbortMessage, type PingTask, RUN_KEY_FIELD, type RunResult, type RunTask, type ThreadData, type ThreadMessage, type ThreadTask } from "./pipeline-thread-protocol.ts";

/**
 * The file each pipeline thread starts with. Run from source (tsx, vitest), a
 * thread has to register tsx before it can import TypeScript, which the boot
 * file does; compiled (dist/), it starts with the thread's JavaScript directly.
 */
const THREAD_FILE = new URL(import.meta.url.endsWith(".ts") ? "./pipeline-thread-boot.mjs" : "./pipeline-thread.js", import.meta.url).href;

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
  /** A thread was terminated (its run ignored the abort) or crashed; the pool starts another when needed. */
  onRestart?: (reason: "terminated" | "crashed") => void;
}

/** What the pool knows of a run while its thread may still send messages about it. */
interface Route {
  log: Logger;
  began(threadId: number): void;
  /** Log records received; the route is dropped once the run has ended and all it counted are in. */
  logs: number;
  expectedLogs: number | null;
}

/**
 * A pool of worker threads (piscina) that run pipelines off the worker's
 * event loop (IX_PIPELINE_ISOLATION=thread). Aborting a run posts its key on
 * the pool's abort channel, where its thread's wrapper aborts the pipeline's
 * signal; killing it terminates the thread (piscina's per-task signal) and
 * a later run gets a new thread. Threads report a run's start and its log
 * records on their own port to the pool (no channel per run: creating one
 * halved the pool's throughput). The pool starts on first use or `ready()`,
 * with one thread, and grows to one thread per slot as runs overlap;
 * `close()` terminates them all.
 */
export class PipelineThreads {
  readonly #options: PipelineThreadsOptions;
  #pool: Piscina<ThreadTask, RunResult | "pong"> | null = null;
  #aborts: BroadcastChannel | null = null;
  readonly #routes = new Map<number, Route>();
  #nextKey = 1;
  #closed = false;

  constructor(options: PipelineThreadsOptions) {
    this.#options = options;
  }

  #getPool(): Piscina<ThreadTask, RunResult | "pong"> {
    if (this.#closed) throw new Error("pipeline threads are closed");
    if (this.#pool === null) {
      const abortChannel = `ix-pipeline-abort-${randomUUID()}`;
      this.#aborts = new BroadcastChannel(abortChannel);
      // Only sends; it must never keep the process alive.
      this.#aborts.unref();
      const workerData: ThreadData = { modules: this.#options.modules, maxResultBytes: this.#options.maxResultBytes, abortChannel };
      this.#pool = new Piscina({
        filename: THREAD_FILE,
        // One thread from the start (it proves the modules load in a thread); more as runs overlap, up to
        // one per slot, and they stay. A worker that never runs pipelines concurrently holds one thread (~50 MB).
        minThreads: 1,
        maxThreads: this.#options.threads,
        idleTimeout: Number.POSITIVE_INFINITY,
        recordTiming: false,
        workerData,
      });
      // A thread that dies outside a task (its task, if any, is rejected too) must not crash the worker.
      this.#pool.on("error", (error: unknown) => {
        this.#options.log.error({ err: error }, "pipeline thread failed");
        this.#options.onRestart?.("crashed");
      });
      this.#pool.on("message", (message: ThreadMessage) => this.#onMessage(message));
    }
    return this.#pool;
  }

  #onMessage(message: ThreadMessage): void {
    const route = this.#routes.get(message.key);
    if (!route) return;
    if ("started" in message) route.began(message.started);
    else {
      forwardLog(route.log, message.log);
      route.logs++;
      if (route.expectedLogs !== null && route.logs >= route.expectedLogs) this.#routes.delete(message.key);
    }
  }

  /**
   * Starts `threads` threads (one per slot by default) and waits until each
   * has loaded its pipelines; rejects with a module's load error.
   */
  async ready(threads = this.#options.threads): Promise<void> {
    const pool = this.#getPool();
    const count = Math.min(threads, this.#options.threads);
    const ping: PingTask = { ping: true, barrier: new SharedArrayBuffer(4), threads: count };
    await Promise.all(Array.from({ length: count }, () => pool.run(ping)));
  }

  /** Runs `name` for `job` in a thread; `trace` is the run span's headers, for the pipeline's context. */
  start(name: string, job: Job, log: Logger, trace: TraceContext | null = null): Attempt {
    const pool = this.#getPool();
    const key = this.#nextKey++;
    const kill = new AbortController();
    let threadId: number | null = null;
    let exited: Promise<void> | null = null;
    let begin: () => void = () => {};
    const began = new Promise<void>((resolve) => {
      begin = resolve;
    });
    const route: Route = {
      log,
      began(id) {
        threadId = id;
        begin();
      },
      logs: 0,
      expectedLogs: null,
    };
    this.#routes.set(key, route);

    const task: RunTask = { key, name, request: job.request, logLevel: log.level, trace };
    const outcome = (pool.run(task, { signal: kill.signal }) as Promise<RunResult>).then(
      (result): Execution => {
        // Log records travel apart from the result: keep the route until all the run counted have arrived.
        route.expectedLogs = result.logs;
        if (route.logs >= result.logs) this.#routes.delete(key);
        return result.execution;
      },
      (error: unknown): Execution => {
        this.#routes.delete(key);
        if (kill.signal.aborted) return { ok: false, error: `pipeline "${name}" was terminated` };
        log.error({ err: error }, "pipeline thread died during the run");
        this.#options.onRestart?.("crashed");
        return { ok: false, error: `pipeline "${name}" failed: its thread died (${messageOf(error)})` };
      },
    );
    // The start message and the result travel apart: whichever arrives first means it began.
    void outcome.then(begin);
    const stopped = outcome.then(async () => {
      if (exited) await exited;
    });
    return {
      outcome,
      began,
      abort: (reason) => {
        if (!kill.signal.aborted) this.#aborts?.postMessage({ key, reason: reason.message } satisfies AbortMessage);
      },
      kill: () => {
        if (kill.signal.aborted) return true;
        // The thread running this run, found before piscina removes it from the pool: its exit is when the run has stopped.
        const thread = threadId === null ? undefined : this.#pool?.threads.find((t: Thread) => t.threadId === threadId);
        if (thread) exited = exitOf(thread, log);
        kill.abort(new Error("killed after the kill grace"));
        this.#options.onRestart?.("terminated");
        return true;
      },
      stopped,
    };
  }

  /** Terminates every thread, running or idle, and waits for them to exit. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.destroy();
    this.#aborts?.close();
    this.#pool = null;
    this.#routes.clear();
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
  const { level, msg, [RUN_KEY_FIELD]: _run, ...fields } = record;
  const label = typeof level === "number" ? log.levels.labels[level] : undefined;
  const method = label !== undefined && label in log ? (log[label as keyof Logger] as Logger["info"]) : log.info;
  method.call(log, fields, typeof msg === "string" ? msg : undefined);
}
