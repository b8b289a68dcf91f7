// What the worker (pipeline-threads.ts) and its pipeline threads (pipeline-thread.ts)
// say to each other. Its own module: importing the thread entry would run it.
import type { RequestIX, TraceContext } from "@ix/contracts";
import type { Execution } from "./pipeline.ts";

/** What the worker gives every thread at its start (piscina's `workerData`). */
export interface ThreadData {
  /** Module URLs to load, as the worker's registry resolved them. */
  modules: string[];
  /** Largest serialized result a run may return (IX_MAX_RESULT_BYTES). */
  maxResultBytes: number;
  /** The pool's BroadcastChannel for aborts: rare, so one channel for all threads beats a port per run. */
  abortChannel: string;
}

/** One run: its key (unique in the pool), the pipeline's name, the request. */
export interface RunTask {
  key: number;
  name: string;
  request: RequestIX;
  /** The worker's level for this job's log: records below it are not even sent. */
  logLevel: string;
  /** The run span's headers, for the pipeline's context (tracing.ts); null: no trace. */
  trace: TraceContext | null;
}

/**
 * Loads the thread (it answers once its pipelines are loaded). All pings of
 * one warm-up share `barrier` and wait for each other, so N pings occupy N
 * distinct threads.
 */
export interface PingTask {
  ping: true;
  /** Int32Array[1] of arrivals; released when it reaches `threads`. */
  barrier: SharedArrayBuffer;
  threads: number;
}

export type ThreadTask = RunTask | PingTask;

/** What a run answers: its outcome, and how many log records it sent, so the worker knows when it has them all. */
export interface RunResult {
  execution: Execution;
  logs: number;
}

/** Thread → worker, on the thread's parentPort: the run has begun in this thread; a log record of the run. */
export type ThreadMessage = { key: number; started: number } | { key: number; log: string };
/** Worker → threads, on the abort channel. */
export interface AbortMessage {
  key: number;
  reason: string;
}

/** The field that ties a log record to its run; the worker removes it before writing the record. */
export const RUN_KEY_FIELD = "ix_run";
