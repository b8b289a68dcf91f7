import { UseCase, type Job, type RequestIX, type ResponseIX } from "@ix/contracts";
import { lifecycle } from "@ix/store";
import type { Logger } from "pino";
import { z } from "zod";

export interface PipelineContext {
  /** Fires at IX_PIPELINE_REQUEST_TIMEOUT_SECONDS and at hard shutdown: stop work and throw. */
  signal: AbortSignal;
  /** A child logger carrying job_id, use_case and attempt. */
  log: Logger;
}

/**
 * A pipeline: `name` is the use_case it serves; `input`, when
 * given, validates `request.options` before `run`, which then sees the parsed
 * options; `run` returns the `result` object and throws to fail the job.
 */
export interface Pipeline<Options = Record<string, unknown>> {
  name: string;
  input?: z.ZodType<Options>;
  run(request: Omit<RequestIX, "options"> & { options: Options }, context: PipelineContext): Promise<Record<string, unknown>> | Record<string, unknown>;
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
});

/** Why `value` is not a pipeline, or null. */
export function pipelineShapeError(value: unknown): string | null {
  const parsed = PipelineShape.safeParse(value);
  if (parsed.success) return null;
  return parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ");
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
}

function issuesText(error: z.ZodError): string {
  return error.issues
    .map((issue) => `options${issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}: ${issue.message}`)
    .join("; ");
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

export interface RunParams {
  job: Job;
  registry: PipelineRegistry;
  timeoutMs: number;
  log: Logger;
  /** Aborts the run from outside (hard shutdown). */
  signal?: AbortSignal;
}

/**
 * Runs the job's pipeline and always returns a valid ResponseIX: an
 * unknown use_case, invalid options, a throw, a result that is not a JSON
 * object, or the timeout become `error`. The timeout ends the run at that
 * moment even if the pipeline ignores its signal; its late outcome is logged
 * and dropped. Metadata times are this host's clock: they describe the run here.
 */
export async function runPipeline({ job, registry, timeoutMs, log, signal }: RunParams): Promise<ResponseIX> {
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
    return respond(`no pipeline is registered for use_case "${useCase}" (registered: ${known})`, null);
  }
  let options: unknown = job.request.options;
  if (pipeline.input) {
    const parsed = pipeline.input.safeParse(job.request.options);
    if (!parsed.success) return respond(`invalid options for pipeline "${pipeline.name}": ${issuesText(parsed.error)}`, null);
    options = parsed.data;
  }

  // One controller the pipeline sees, aborted by the timeout or by the outer
  // signal. AbortSignal.any would do, but costs too much per run on Node 20 (BENCHMARKS.md).
  const runAbort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => {
      runAbort.abort(new Error(`pipeline timed out after ${timeoutMs / 1000} s`));
      resolve("timeout");
    }, timeoutMs);
  });
  // A hard stop ends the wait too, so an abandoned run never holds its slot.
  let onStop: (() => void) | undefined;
  const stopped = new Promise<"stopped">((resolve) => {
    onStop = () => {
      runAbort.abort(signal?.reason);
      resolve("stopped");
    };
    if (signal?.aborted) onStop();
    else signal?.addEventListener("abort", onStop, { once: true });
  });
  const running = (async () => pipeline.run({ ...job.request, options }, { signal: runAbort.signal, log }))();
  try {
    const outcome = await Promise.race([running.then((result) => ({ result })), timedOut, stopped]);
    if (outcome === "stopped") {
      running.catch(() => {});
      return respond(`pipeline "${pipeline.name}" was cut off by worker shutdown`, null);
    }
    if (outcome === "timeout") {
      running.then(
        () => log.warn("pipeline finished after its timeout; result dropped"),
        (error: unknown) => log.debug({ err: error }, "pipeline failed after its timeout"),
      );
      return respond(
        `pipeline "${pipeline.name}" timed out after ${timeoutMs / 1000} s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)`,
        null,
      );
    }
    return respond(null, asResult(outcome.result, pipeline.name));
  } catch (error) {
    if (error instanceof InvalidResultError) return respond(error.message, null);
    log.debug({ err: error }, "pipeline threw");
    return respond(`pipeline "${pipeline.name}" failed: ${messageOf(error)}`, null);
  } finally {
    clearTimeout(timer);
    if (onStop) signal?.removeEventListener("abort", onStop);
  }
}

class InvalidResultError extends Error {}

/** The result as stored: a plain JSON object, round-tripped so what runs is what is stored. */
function asResult(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidResultError(`pipeline "${name}" returned ${Array.isArray(value) ? "an array" : typeof value}, expected a result object`);
  }
  let json: unknown;
  try {
    json = JSON.parse(JSON.stringify(value));
  } catch (error) {
    throw new InvalidResultError(`pipeline "${name}" returned a result that is not JSON: ${messageOf(error)}`);
  }
  return json as Record<string, unknown>;
}
