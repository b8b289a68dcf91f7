import type { Job, ResponseIX, TraceContext } from "@ix/contracts";
import { type Context, context as otelContext, ROOT_CONTEXT } from "@opentelemetry/api";
import { lifecycle } from "@ix/store";
import type { Logger } from "pino";
import { DEFAULT_WORKER_CONFIG } from "./config.ts";
import { type AnyPipeline, type Execution, executePipeline, type PipelineRegistry } from "./pipeline.ts";
import type { PipelineThreads } from "./pipeline-threads.ts";

/** One run of a pipeline, wherever it runs (inline or in a thread). */
export interface Attempt {
  /** The run's outcome; never rejects. */
  readonly outcome: Promise<Execution>;
  /** In a thread: resolves once the thread has taken the run. Absent when the run started at once (inline). */
  readonly began?: Promise<void>;
  /** Aborts the run's signal: a pipeline that honours it stops soon after. */
  abort(reason: Error): void;
  /** Stops the run by force; false when that is impossible (an inline run). */
  kill(): boolean;
  /** Resolves once the run has really stopped: it returned or threw, or its thread is gone. */
  readonly stopped: Promise<void>;
}

/** The run's trace: the OpenTelemetry context an inline run executes in, and the headers a pipeline is given. */
export interface RunTrace {
  context: Context;
  headers: TraceContext | null;
}

const NO_TRACE: RunTrace = { context: ROOT_CONTEXT, headers: null };

/**
 * Runs `pipeline` on this thread's event loop, inside the run span's context:
 * fast, but nothing can stop a run that ignores its signal.
 */
export function runInline(pipeline: AnyPipeline, job: Job, log: Logger, maxResultBytes: number, trace: RunTrace = NO_TRACE): Attempt {
  const controller = new AbortController();
  const outcome = otelContext.with(trace.context, () =>
    executePipeline(pipeline, job.request, { signal: controller.signal, log, maxResultBytes, trace: trace.headers }),
  );
  return {
    outcome,
    abort: (reason) => controller.abort(reason),
    kill: () => false,
    stopped: outcome.then(() => undefined),
  };
}

export interface RunParams {
  job: Job;
  registry: PipelineRegistry;
  timeoutMs: number;
  log: Logger;
  /** Aborts the run from outside (hard shutdown): the run is killed at once where it can be. */
  signal?: AbortSignal;
  /**
   * Stops the run (its cancel was requested, or its lease was lost): its
   * signal aborts, and a run still going after `cancelGraceMs` is killed
   * (IX_CANCEL_GRACE_SECONDS); the response is given when the run ends or at
   * the grace, whichever is first.
   */
  cancel?: AbortSignal;
  cancelGraceMs?: number;
  /** Where thread-capable pipelines run (IX_PIPELINE_ISOLATION=thread); everything runs inline without it. */
  threads?: PipelineThreads | null;
  /** After the timeout, how long a run may take to honour its signal before it is killed (IX_PIPELINE_KILL_GRACE_SECONDS). */
  killGraceMs?: number;
  /** Largest serialized result accepted (IX_MAX_RESULT_BYTES). */
  maxResultBytes?: number;
  /** The run span (tracing.ts): inline runs execute in its context, and every pipeline gets its headers. */
  trace?: RunTrace;
}

/**
 * A thread that replaces a terminated one loads its pipelines before it takes a
 * run; that start-up does not count against the run's timeout, but this bounds
 * it, so a job never waits for a thread forever.
 */
export const THREAD_START_ALLOWANCE_MS = 30_000;

/** A run's response and whether its failure (if any) is worth another run. */
export interface RunVerdict {
  response: ResponseIX;
  /** The pipeline threw a RetryableError, or the run timed out. */
  retryable: boolean;
  retryAfterSeconds?: number;
}

export interface StartedRun {
  /**
   * The job's response: the run's outcome, or an error at the timeout or a
   * hard stop, whichever comes first. Never rejects.
   */
  response: Promise<ResponseIX>;
  /** The same response, with whether its failure is retryable. */
  verdict: Promise<RunVerdict>;
  /**
   * Resolves when the run has really stopped (returned, threw, or its thread
   * was terminated), which may be after `response`: the job runner holds the
   * run's slot until then, so runs never exceed the concurrency.
   */
  stopped: Promise<void>;
}

/** Runs the job's pipeline; see `startPipeline`. Resolves with the response only. */
export async function runPipeline(params: RunParams): Promise<ResponseIX> {
  return startPipeline(params).response;
}

/**
 * Starts the job's pipeline and always produces a valid ResponseIX: an
 * unknown use_case, invalid options, a throw, a bad or oversized result, or
 * the timeout become `error`. The timeout counts from the moment the pipeline
 * starts (in a thread: once a thread has taken it, THREAD_START_ALLOWANCE_MS at
 * most after the call). At the timeout the run's signal aborts and the
 * response is the timeout error; a run still going after the kill grace has
 * its thread terminated (an inline run cannot be, and keeps its slot until it
 * returns). Metadata times are this host's clock: they describe the run here.
 */
export function startPipeline({
  job,
  registry,
  timeoutMs,
  log,
  signal,
  cancel,
  cancelGraceMs = DEFAULT_WORKER_CONFIG.cancelGraceSeconds * 1000,
  threads = null,
  killGraceMs = DEFAULT_WORKER_CONFIG.killGraceSeconds * 1000,
  maxResultBytes = DEFAULT_WORKER_CONFIG.maxResultBytes,
  trace = NO_TRACE,
}: RunParams): StartedRun {
  const startedAt = new Date();
  const started = performance.now();
  const useCase = job.request.use_case;
  const pipeline = registry.get(useCase);
  const respond = (error: string | null, result: Record<string, unknown> | null): ResponseIX =>
    lifecycle.buildResponse(job, {
      pipeline: pipeline?.name ?? useCase,
      error,
      result,
      startedAt,
      finishedAt: new Date(),
      durationMs: performance.now() - started,
      attempt: job.attempts + 1,
    });

  if (!pipeline) {
    const known = registry.names.length ? registry.names.join(", ") : "none";
    const response = respond(`no pipeline is registered for use_case "${useCase}" (registered: ${known})`, null);
    return { response: Promise.resolve(response), verdict: Promise.resolve({ response, retryable: false }), stopped: Promise.resolve() };
  }
  const attempt =
    threads !== null && registry.threadSource(pipeline.name) !== undefined
      ? threads.start(pipeline.name, job, log, trace.headers)
      : runInline(pipeline, job, log, maxResultBytes, trace);

  let timer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  let onStop: (() => void) | undefined;
  let onCancel: (() => void) | undefined;
  let finished = false;
  void attempt.stopped.then(() => {
    finished = true;
    clearTimeout(graceTimer);
  });

  const verdict = new Promise<RunVerdict>((resolve) => {
    let answered = false;
    const answer = (value: ResponseIX, retry: { retryable: boolean; retryAfterSeconds?: number } = { retryable: false }) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      if (onStop) signal?.removeEventListener("abort", onStop);
      if (onCancel) cancel?.removeEventListener("abort", onCancel);
      resolve({ response: value, ...retry });
    };

    void attempt.outcome.then((outcome) => {
      if (answered) {
        // The response was already given (timeout or stop): this late outcome is dropped.
        if (outcome.ok) log.warn("pipeline finished after its timeout; result dropped");
        else log.debug({ error: outcome.error }, "pipeline ended after its timeout");
        return;
      }
      if (outcome.ok) answer(respond(null, JSON.parse(outcome.json) as Record<string, unknown>));
      else {
        const retry = outcome.retryable === true ? { retryable: true, ...(outcome.retryAfterSeconds !== undefined ? { retryAfterSeconds: outcome.retryAfterSeconds } : {}) } : { retryable: false };
        answer(respond(outcome.error, null), retry);
      }
    });

    const onTimeout = () => {
      if (answered) return;
      attempt.abort(new Error(`pipeline timed out after ${timeoutMs / 1000} s`));
      // A timeout is worth another run: the provider may answer faster next time.
      answer(respond(`pipeline "${pipeline.name}" timed out after ${timeoutMs / 1000} s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)`, null), { retryable: true });
      graceTimer = setTimeout(() => {
        if (finished) return;
        if (attempt.kill()) {
          log.warn({ killGraceSeconds: killGraceMs / 1000 }, "pipeline ignored its abort past the kill grace; its thread is terminated");
        } else {
          log.warn(
            { killGraceSeconds: killGraceMs / 1000 },
            "pipeline ignored its abort past the kill grace; an inline run cannot be stopped, so its slot stays taken until it returns",
          );
        }
      }, killGraceMs);
    };
    if (attempt.began === undefined) timer = setTimeout(onTimeout, timeoutMs);
    else {
      let startTimer: (() => void) | undefined = () => {
        startTimer = undefined;
        clearTimeout(timer);
        if (!answered) timer = setTimeout(onTimeout, timeoutMs);
      };
      // Usually `began` comes first; the allowance only bounds a thread that never takes the run.
      timer = setTimeout(() => startTimer?.(), THREAD_START_ALLOWANCE_MS);
      void attempt.began.then(() => startTimer?.());
    }

    // A hard stop: the job is left to the rescuer, so its run is stopped at once where it can be.
    onStop = () => {
      attempt.abort(signal?.reason instanceof Error ? signal.reason : new Error("worker shutting down"));
      attempt.kill();
      answer(respond(`pipeline "${pipeline.name}" was cut off by worker shutdown`, null));
    };
    if (signal?.aborted) onStop();
    else signal?.addEventListener("abort", onStop, { once: true });

    // A cancel (or a lost lease): abort now, give the run the cancel grace to honour it, then kill it.
    onCancel = () => {
      if (answered) return;
      const reason = cancel?.reason instanceof Error ? cancel.reason : new Error("run cancelled");
      attempt.abort(reason);
      clearTimeout(timer);
      const cancelTimer = setTimeout(() => {
        if (finished) return;
        const killed = attempt.kill();
        if (killed) log.warn({ cancelGraceSeconds: cancelGraceMs / 1000 }, "pipeline ignored its cancel past the cancel grace; its thread is terminated");
        else log.warn({ cancelGraceSeconds: cancelGraceMs / 1000 }, "pipeline ignored its cancel past the cancel grace; an inline run cannot be stopped, so its slot stays taken until it returns");
        answer(respond(`pipeline "${pipeline.name}" was stopped: ${reason.message}`, null));
      }, cancelGraceMs);
      void attempt.stopped.then(() => clearTimeout(cancelTimer));
    };
    if (cancel?.aborted) onCancel();
    else cancel?.addEventListener("abort", onCancel, { once: true });
  });
  return { response: verdict.then((v) => v.response), verdict, stopped: attempt.stopped };
}
