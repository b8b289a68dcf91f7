export { buildApp, type ApiApp, type BuildAppOptions } from "./app.ts";
export { createAuthenticator, type Authentication, type Caller } from "./auth.ts";
export { apiConfig, assertSafeBind, isLoopbackHost, type ApiConfig, type ApiKey } from "./config.ts";
export {
  ApiEnv,
  apiConfigFromEnv,
  apiPoolOptionsFromEnv,
  loadApiEnv,
  parseApiEnv,
  MIN_API_KEY_LENGTH,
} from "./env.ts";
export { runApiMain, startApi, type RunningApi, type StartedApi } from "./main.ts";
export { PROBLEM_CONTENT_TYPE, PROBLEMS, problemType, type ProblemKind } from "./problems.ts";
export { createApiMetrics, LIVE_WORKER_SECONDS, type ApiMetrics, type ApiMetricsOptions } from "./metrics.ts";
