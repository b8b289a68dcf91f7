export { buildApp, type ApiApp, type BuildAppOptions } from "./app";
export { createAuthenticator, type Authentication, type Caller } from "./auth";
export { apiConfig, assertSafeBind, isLoopbackHost, type ApiConfig, type ApiKey } from "./config";
export {
  ApiEnv,
  apiConfigFromEnv,
  apiPoolOptionsFromEnv,
  loadApiEnv,
  parseApiEnv,
  MIN_API_KEY_LENGTH,
} from "./env";
export { runApiMain, startApi, type RunningApi, type StartedApi } from "./main";
export { PROBLEM_CONTENT_TYPE, PROBLEMS, problemType, type ProblemKind } from "./problems";
