export { shutdownOnSignals, type ShutdownLog, type ShutdownOnSignals, type SignalSource } from "./shutdown.ts";
export { createLogger, LOG_FORMATS, prettyLine, resolveLogFormat, type CreateLoggerOptions, type LogFormat, type LogOutput } from "./logger.ts";
// A package, not part of one app: ix api, ix worker and ix start all use it, and the API and the worker may not import each other.
export { startTracing, tracesExporterFromEnv, type StartTracingOptions, type Tracing, type TracesExporter, type TracesExporterSetting } from "./tracing.ts";
