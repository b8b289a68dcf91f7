// The inside of a pipeline thread (IX_PIPELINE_ISOLATION=thread): loaded once per
// thread by pipeline-thread-boot.mjs, it loads the built-in pipelines and the
// modules the worker registered, then runs one task at a time for
// pipeline-threads.ts. It must not import @ix/store: a thread only runs pipelines.
import type { MessagePort } from "node:worker_threads";
import { threadId, workerData } from "node:worker_threads";
import type { RequestIX } from "@ix/contracts";
import { pino } from "pino";
import { type AnyPipeline, type Execution, executePipeline } from "./pipeline";
import { loadPipelineModules } from "./pipeline-modules";
import { builtinPipelines } from "./pipelines";

/** What the worker gives every thread at its start (piscina's `workerData`). */
export interface ThreadData {
  /** Module URLs to load, as the worker's registry resolved them. */
  modules: string[];
  /** Largest serialized result a run may return (IX_MAX_RESULT_BYTES). */
  maxResultBytes: number;
}

/** One run: the pipeline's name, the request, and this run's own channel to the worker. */
export interface RunTask {
  name: string;
  request: RequestIX;
  /** The worker's level for this job's log: records below it are not even sent. */
  logLevel: string;
  /** Thread → worker: `{ started: threadId }` first, then `{ log: line }`; worker → thread: `{ abort: message }`. */
  port: MessagePort;
}

export type ThreadTask = RunTask | { ping: true };

/** Messages a run sends on its port. */
export type ThreadMessage = { started: number } | { log: string };

const data = workerData as ThreadData;
const byName = new Map<string, AnyPipeline>();
for (const pipeline of [...builtinPipelines(), ...(await loadPipelineModules(data.modules))]) {
  // The worker refused duplicates before starting threads; a module that exports different names here would be a bug.
  if (byName.has(pipeline.name)) throw new Error(`pipeline "${pipeline.name}" is loaded twice in a pipeline thread`);
  byName.set(pipeline.name, pipeline);
}

/**
 * Runs one task. The pipeline's log writes through the port, so its records
 * reach the worker's own logger with the job's bindings; an `abort` message
 * aborts the run's signal. The result is checked and serialized here, so an
 * oversized result never crosses to the worker.
 */
export default async function runTask(task: ThreadTask): Promise<Execution | "pong"> {
  if ("ping" in task) return "pong";
  const { port } = task;
  port.postMessage({ started: threadId } satisfies ThreadMessage);
  const controller = new AbortController();
  port.on("message", (message: { abort?: string }) => {
    if (typeof message.abort === "string") controller.abort(new Error(message.abort));
  });
  const log = pino(
    { level: task.logLevel, base: null, timestamp: false },
    { write: (line: string) => port.postMessage({ log: line } satisfies ThreadMessage) },
  );
  try {
    const pipeline = byName.get(task.name);
    if (!pipeline) return { ok: false, error: `pipeline "${task.name}" is not loaded in its thread` };
    return await executePipeline(pipeline, task.request, { signal: controller.signal, log, maxResultBytes: data.maxResultBytes });
  } finally {
    // Closing here, after the last log record, lets the worker receive them all before its end closes.
    port.close();
  }
}
