// The inside of a pipeline thread (IX_PIPELINE_ISOLATION=thread): loaded once per
// thread by pipeline-thread-boot.mjs, it loads the built-in pipelines and the
// modules the worker registered, then runs one task at a time for
// pipeline-threads.ts. It must not import @ix/store: a thread only runs pipelines.
import { BroadcastChannel, parentPort, threadId, workerData } from "node:worker_threads";
import { type Logger, pino } from "pino";
import { type AnyPipeline, type Execution, executePipeline } from "./pipeline.ts";
import { type AbortMessage, RUN_KEY_FIELD, type RunResult, type ThreadData, type ThreadMessage, type ThreadTask } from "./pipeline-thread-protocol.ts";
import { loadPipelineModules } from "./pipeline-modules.ts";
import { builtinPipelines } from "./pipelines/index.ts";

const data = workerData as ThreadData;
const byName = new Map<string, AnyPipeline>();
for (const pipeline of [...builtinPipelines(), ...(await loadPipelineModules(data.modules))]) {
  // The worker refused duplicates before starting threads; a module that exports different names here would be a bug.
  if (byName.has(pipeline.name)) throw new Error(`pipeline "${pipeline.name}" is loaded twice in a pipeline thread`);
  byName.set(pipeline.name, pipeline);
}

/** The run in progress (a thread runs one at a time) and its controller. */
let current: { key: number; controller: AbortController } | null = null;
const aborts = new BroadcastChannel(data.abortChannel);
aborts.onmessage = (event) => {
  const { key, reason } = (event as unknown as { data: AbortMessage }).data;
  const run = current;
  if (run?.key === key) run.controller.abort(new Error(reason));
};

function send(message: ThreadMessage): void {
  parentPort?.postMessage(message);
}

const RUN_KEY = new RegExp(`"${RUN_KEY_FIELD}":(\\d+)`);
/** Log records sent per run, for the run's result. */
const logCounts = new Map<number, number>();
/**
 * One logger per level for the thread's life, and a child per run: creating a
 * pino logger costs ~60 µs, a child ~2 µs, and every run needs one.
 */
const loggers = new Map<string, Logger>();

function runLogger(level: string, key: number): Logger {
  let base = loggers.get(level);
  if (base === undefined) {
    base = pino(
      { level, base: null, timestamp: false },
      {
        write(line: string) {
          const runKey = Number(RUN_KEY.exec(line)?.[1]);
          if (!Number.isInteger(runKey)) return;
          logCounts.set(runKey, (logCounts.get(runKey) ?? 0) + 1);
          send({ key: runKey, log: line });
        },
      },
    );
    loggers.set(level, base);
  }
  return base.child({ [RUN_KEY_FIELD]: key });
}

/**
 * Runs one task. The pipeline's log records go to the worker, which writes
 * them through its own logger with the job's bindings; an abort message for
 * this run aborts its signal. The result is checked and serialized here, so
 * an oversized result never crosses to the worker.
 */
export default async function runTask(task: ThreadTask): Promise<RunResult | "pong"> {
  if ("ping" in task) {
    // Held until every ping of this warm-up has a thread: polled, it happens once per warm-up.
    const arrivals = new Int32Array(task.barrier);
    Atomics.add(arrivals, 0, 1);
    while (Atomics.load(arrivals, 0) < task.threads) await new Promise((resolve) => setTimeout(resolve, 5));
    return "pong";
  }
  const { key } = task;
  send({ key, started: threadId });
  const controller = new AbortController();
  current = { key, controller };
  const log = runLogger(task.logLevel, key);
  try {
    const pipeline = byName.get(task.name);
    const execution: Execution = pipeline
      ? await executePipeline(pipeline, task.request, { signal: controller.signal, log, maxResultBytes: data.maxResultBytes, trace: task.trace })
      : { ok: false, error: `pipeline "${task.name}" is not loaded in its thread` };
    return { execution, logs: logCounts.get(key) ?? 0 };
  } finally {
    current = null;
    logCounts.delete(key);
  }
}
