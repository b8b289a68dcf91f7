// Loaded by the main thread and by every pipeline thread: keep it free of @ix/store and anything heavy.
import { UseCase, type RequestIX, type TraceContext } from "@ix/contracts";
import type { Logger } from "pino";
import { z } from "zod";

export interface PipelineContext {
  /** Fires at IX_PIPELINE_REQUEST_TIMEOUT_SECONDS and at hard shutdown: stop work and throw. */
  signal: AbortSignal;
  /** A child logger carrying job_id, use_case and attempt. */
  log: Logger;
  /**
   * The W3C `traceparent` of this run's span (`ix.run <use_case>`), to send on
   * the pipeline's own requests (a provider's API) or to parent its own spans;
   * null when the run is in no trace. Inline runs also run inside the span's
   * OpenTelemetry context; a pipeline thread registers no SDK, so there this is the way in.
   */
  traceparent: string | null;
  /** The W3C `tracestate` that goes with it, or null. */
  tracestate: string | null;
}

/**
 * A pipeline: `name` is the use_case it serves; `input`, when
 * given, validates `request.options` before `run`, which then sees the parsed
 * options; `run` returns the `result` object and throws to fail the job.
 */
export interface Pipeline<Options = Record<string, unknown>> {
  name: string;
  input?: z.ZodType<Options>;
  /** How this pipeline's retryable failures are retried; unset fields fall back to IX_MAX_ATTEMPTS, IX_RETRY_BASE_SECONDS, IX_RETRY_MAX_SECONDS. */
  retry?: RetryPolicy;
  run(request: Omit<RequestIX, "options"> & { options: Options }, context: PipelineContext): Promise<Record<string, unknown>> | Record<string, unknown>;
}

/** A pipeline's retry policy: runs a job may have, and the full-jitter backoff between them. */
export interface RetryPolicy {
  maxAttempts?: number;
  baseSeconds?: number;
  maxSeconds?: number;
}

/** Marks a RetryableError across module copies (a pipeline module may import its own copy of @ix/worker) and thread boundaries. */
const RETRYABLE = Symbol.for("ix.RetryableError");

/**
 * Thrown by a pipeline for a failure worth another run (a provider's 429 or
 * 503): with runs left, the job goes back to pending after a backoff, or after
 * `retryAfterSeconds` when that is longer. Any other throw ends the job `error`.
 */
export class RetryableError extends Error {
  readonly retryAfterSeconds: number | undefined;
  constructor(message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RetryableError";
    this.retryAfterSeconds = options.retryAfterSeconds;
    Object.defineProperty(this, RETRYABLE, { value: true });
  }
}

/** Whether `error` is a RetryableError, from whichever copy of this module made it. */
export function isRetryableError(error: unknown): error is RetryableError {
  return typeof error === "object" && error !== null && (error as Record<symbol, unknown>)[RETRYABLE] === true;
}

/** Identity, for type inference of `options` from `input`. */
export function definePipeline<Options>(pipeline: Pipeline<Options>): Pipeline<Options> {
  return pipeline;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds pipelines of every options type
export type AnyPipeline = Pipeline<any>;

/** What a module must export to be loaded as a pipeline; checked before the registry trusts it. */
const PipelineShape = z.object({
  name: UseCase,
  run: z.custom<AnyPipeline["run"]>((value) => typeof value === "function", "must be a function"),
  input: z
    .custom<z.ZodType>((value) => typeof value === "object" && value !== null && "safeParse" in value, "must be a zod schema")
    .optional(),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(1000).optional(),
      baseSeconds: z.number().positive().max(86_400).optional(),
      maxSeconds: z.number().positive().max(86_400).optional(),
    })
    .refine((p) => p.baseSeconds === undefined || p.maxSeconds === undefined || p.baseSeconds <= p.maxSeconds, "baseSeconds must not exceed maxSeconds")
    .optional(),
});

/** Why `value` is not a pipeline, or null. */
export function pipelineShapeError(value: unknown): string | null {
  const parsed = PipelineShape.safeParse(value);
  if (parsed.success) return null;
  return parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ");
}

/** The thread source of the pipelines every thread loads itself (`builtinPipelines()`). */
export const BUILTIN_SOURCE = "builtin";

/**
 * Where a pipeline object can be loaded again inside a pipeline thread:
 * BUILTIN_SOURCE, or the URL of the module it was loaded from. A pipeline
 * without one was created in code; its closure cannot cross threads, so it runs inline.
 */
const threadSources = new WeakMap<AnyPipeline, string>();

/** Records that `pipeline` can be loaded from `source` inside a thread. */
export function markThreadSource(pipeline: AnyPipeline, source: string): void {
  threadSources.set(pipeline, source);
}

export class PipelineRegistry {
  readonly #byName = new Map<string, AnyPipeline>();

  constructor(pipelines: Iterable<AnyPipeline> = []) {
    for (const pipeline of pipelines) this.register(pipeline);
  }

  /** Adds a pipeline; a second one with the same name is an error, never a silent override. */
  register(pipeline: AnyPipeline): this {
    const problem = pipelineShapeError(pipeline);
    if (problem !== null) throw new TypeError(`not a pipeline: ${problem}`);
    if (this.#byName.has(pipeline.name)) throw new Error(`pipeline "${pipeline.name}" is registered twice`);
    this.#byName.set(pipeline.name, pipeline);
    return this;
  }

  get(name: string): AnyPipeline | undefined {
    return this.#byName.get(name);
  }

  get names(): string[] {
    return [...this.#byName.keys()].sort();
  }

  /** The pipeline's retry policy, if it has one. */
  retryPolicy(name: string): RetryPolicy | undefined {
    return this.#byName.get(name)?.retry;
  }

  /** BUILTIN_SOURCE or a module URL when the pipeline can run in a thread; undefined when it must run inline. */
  threadSource(name: string): string | undefined {
    const pipeline = this.#byName.get(name);
    return pipeline === undefined ? undefined : threadSources.get(pipeline);
  }

  /** The modules a pipeline thread must load to serve every thread-capable pipeline here. */
  get threadModules(): string[] {
    const modules = new Set<string>();
    for (const pipeline of this.#byName.values()) {
      const source = threadSources.get(pipeline);
      if (source !== undefined && source !== BUILTIN_SOURCE) modules.add(source);
    }
    return [...modules];
  }
}

function issuesText(error: z.ZodError): string {
  return error.issues
    .map((issue) => `options${issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}: ${issue.message}`)
    .join("; ");
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/**
 * What one run produced: the result as serialized JSON (a string crosses
 * threads cheaply, and its length is what IX_MAX_RESULT_BYTES bounds), or the
 * error message for the response.
 */
export type Execution =
  | { ok: true; json: string }
  | { ok: false; error: string; retryable?: boolean; retryAfterSeconds?: number };

export interface ExecuteOptions {
  signal: AbortSignal;
  log: Logger;
  /** Largest serialized result accepted (IX_MAX_RESULT_BYTES). */
  maxResultBytes: number;
  /** The run span's headers, for the pipeline's context; none: no trace. */
  trace?: TraceContext | null;
}

/**
 * Validates the options, runs the pipeline and checks its result, where the
 * result is produced (in its thread, or inline): invalid options, a throw, a
 * result that is not a JSON object or one larger than `maxResultBytes` become
 * an error message. Never throws.
 */
export async function executePipeline(
  pipeline: AnyPipeline,
  request: RequestIX,
  { signal, log, maxResultBytes, trace = null }: ExecuteOptions,
): Promise<Execution> {
  let options: unknown = request.options;
  if (pipeline.input) {
    const parsed = pipeline.input.safeParse(request.options);
    if (!parsed.success) return { ok: false, error: `invalid options for pipeline "${pipeline.name}": ${issuesText(parsed.error)}` };
    options = parsed.data;
  }
  let value: unknown;
  try {
    value = await pipeline.run({ ...request, options }, { signal, log, traceparent: trace?.traceparent ?? null, tracestate: trace?.tracestate ?? null });
  } catch (error) {
    log.debug({ err: error }, "pipeline threw");
    const failed = { ok: false as const, error: `pipeline "${pipeline.name}" failed: ${messageOf(error)}` };
    if (!isRetryableError(error)) return failed;
    // Plain data: crosses the thread boundary where the class instance would not.
    const after = error.retryAfterSeconds;
    return { ...failed, retryable: true, ...(typeof after === "number" && Number.isFinite(after) && after > 0 ? { retryAfterSeconds: after } : {}) };
  }
  return serializeResult(value, pipeline.name, maxResultBytes);
}

/** The result as it will be stored: a JSON object of at most `maxResultBytes` serialized. */
function serializeResult(value: unknown, name: string, maxResultBytes: number): Execution {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: `pipeline "${name}" returned ${Array.isArray(value) ? "an array" : typeof value}, expected a result object` };
  }
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    return { ok: false, error: `pipeline "${name}" returned a result that is not JSON: ${messageOf(error)}` };
  }
  // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: only count when it could matter.
  const bytes = json.length * 3 <= maxResultBytes ? 0 : Buffer.byteLength(json, "utf8");
  if (bytes > maxResultBytes) {
    return {
      ok: false,
      error: `pipeline "${name}" returned a result of ${bytes} bytes (serialized JSON), more than the ${maxResultBytes} bytes IX_MAX_RESULT_BYTES allows`,
    };
  }
  return { ok: true, json };
}
