export { createWorker, type Worker, type WorkerOptions } from "./worker";
export {
  DEFAULT_WORKER_CONFIG,
  PIPELINE_ISOLATIONS,
  workerConfig,
  workerPoolOptions,
  type WorkerConfig,
  type CallbackConfig,
  type PipelineIsolation,
  type WorkerConfigOverrides,
} from "./config";
export { WorkerEnv, parseWorkerEnv, readWorkerEnv, workerConfigFromEnv } from "./env";
export { runWorkerMain, type WorkerMainOptions } from "./main";
export { servedUseCases } from "./use-cases";
export {
  definePipeline,
  isRetryableError,
  PipelineRegistry,
  RetryableError,
  type AnyPipeline,
  type Pipeline,
  type PipelineContext,
  type RetryPolicy,
} from "./pipeline";
export { runPipeline, startPipeline, type RunParams, type StartedRun } from "./pipeline-run";
export { PipelineThreads } from "./pipeline-threads";
export { loadPipelineModules, PipelineModuleError } from "./pipeline-modules";
export { builtinPipelines, extractFields, ExtractFieldsOptions, type FieldMatch } from "./pipelines";
export { parseWebhookSecret, webhookHeaders, type WebhookHeaders } from "./webhook-signature";
export { createCallbackTargetPolicy, nonPublicRange, parseAllowedHosts, type CallbackTargetPolicy } from "./callback-target-policy";
export {
  createCallbackSender,
  CallbackTargetRefusedError,
  type CallbackSender,
  type DeliveryResult,
  type ResolveHost,
} from "./callback-sender";
