export { createWorker, type Worker, type WorkerOptions } from "./worker.ts";
export {
  DEFAULT_WORKER_CONFIG,
  PIPELINE_ISOLATIONS,
  workerConfig,
  workerPoolOptions,
  type WorkerConfig,
  type CallbackConfig,
  type PipelineIsolation,
  type WorkerConfigOverrides,
} from "./config.ts";
export { WorkerEnv, parseTracesExporter, parseWorkerEnv, readTracesExporter, readWorkerEnv, workerConfigFromEnv } from "./env.ts";
export { createWorkerMetrics, type WorkerMetrics } from "./metrics.ts";
export { runWorkerMain, type WorkerMainOptions } from "./main.ts";
export { servedUseCases } from "./use-cases.ts";
export {
  definePipeline,
  isRetryableError,
  PipelineRegistry,
  RetryableError,
  type AnyPipeline,
  type Pipeline,
  type PipelineContext,
  type RetryPolicy,
} from "./pipeline.ts";
export { runPipeline, startPipeline, type RunParams, type StartedRun } from "./pipeline-run.ts";
export { PipelineThreads } from "./pipeline-threads.ts";
export { loadPipelineModules, PipelineModuleError } from "./pipeline-modules.ts";
export { builtinPipelines, extractFields, ExtractFieldsOptions, type FieldMatch } from "./pipelines/index.ts";
export { parseWebhookSecret, webhookHeaders, type WebhookHeaders } from "./webhook-signature.ts";
export { createCallbackTargetPolicy, nonPublicRange, parseAllowedHosts, type CallbackTargetPolicy } from "./callback-target-policy.ts";
export {
  createCallbackSender,
  CallbackTargetRefusedError,
  type CallbackSender,
  type DeliveryResult,
  type ResolveHost,
} from "./callback-sender.ts";
