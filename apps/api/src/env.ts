import { ClientId, envDefault, envVar, optionalEnv, parseEnv } from "@ix/contracts";
import { z } from "zod";
import type { ApiConfig, ApiKey } from "./config";

/** The shortest bearer key accepted: shorter ones are guessable. */
export const MIN_API_KEY_LENGTH = 16;

/**
 * `client_id:key` pairs, comma-separated. A client may hold several
 * keys (rotation); one key may not name two clients.
 */
const ApiKeys = envVar.list().transform((pairs, ctx): ApiKey[] => {
  const keys: ApiKey[] = [];
  const owner = new Map<string, string>();
  for (const [index, pair] of pairs.entries()) {
    const colon = pair.indexOf(":");
    const clientId = colon < 0 ? "" : pair.slice(0, colon);
    const key = colon < 0 ? "" : pair.slice(colon + 1);
    // Never echo the key itself into an error message: it is a secret.
    const where = `pair ${index + 1} (client "${clientId}")`;
    if (colon < 0) {
      ctx.addIssue({ code: "custom", message: `pair ${index + 1} is not client_id:key` });
    } else if (!ClientId.safeParse(clientId).success) {
      ctx.addIssue({ code: "custom", message: `${where}: client_id must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (1-64)` });
    } else if (key.length < MIN_API_KEY_LENGTH) {
      ctx.addIssue({ code: "custom", message: `${where}: key must be at least ${MIN_API_KEY_LENGTH} characters` });
    } else if (owner.has(key) && owner.get(key) !== clientId) {
      ctx.addIssue({ code: "custom", message: `${where}: the same key is already given to client "${owner.get(key)}"` });
    } else {
      owner.set(key, clientId);
      keys.push({ clientId, key });
    }
  }
  return keys;
});

/** Every variable `ix api` reads; the keys are the variable names. */
export const ApiEnv = z.object({
  // The database. Required by `ix api`; `ix start` supplies its embedded one.
  IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()),
  // Bind address. Without IX_API_KEYS only a loopback address is allowed.
  IX_API_HOST: envDefault(z.string().trim().min(1), "127.0.0.1"),
  IX_API_PORT: envDefault(envVar.int(0, 65_535), 8080),
  // client_id:key pairs; when set, every /jobs request needs `Authorization: Bearer <key>`.
  IX_API_KEYS: envDefault(ApiKeys, []),
  // Larger request bodies are refused with 413 before they are parsed.
  IX_API_BODY_LIMIT_BYTES: envDefault(envVar.int(1_024, 100 * 1_048_576), 1_048_576),
  // Connections this API process keeps; a request that finds none free within
  // IX_API_DB_CONNECT_TIMEOUT_MS is answered 503 rather than queued forever.
  IX_API_DB_POOL_SIZE: envDefault(envVar.int(1, 1_000), 10),
  // Bounds connecting and waiting for a pooled connection, so a stopped database answers 503 quickly.
  IX_API_DB_CONNECT_TIMEOUT_MS: envDefault(envVar.int(50, 60_000), 2_000),
  // Server-side cap on any one statement, so a stuck query answers 503 instead of hanging.
  IX_API_STATEMENT_TIMEOUT_MS: envDefault(envVar.int(50, 600_000), 5_000),
  // Sent as Retry-After with every 503.
  IX_API_RETRY_AFTER_SECONDS: envDefault(envVar.int(1, 3_600), 2),
  IX_LOG_LEVEL: envDefault(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
});
export type ApiEnv = z.infer<typeof ApiEnv>;

/** Parses the API's environment once, at start-up; throws a ConfigError naming each bad variable. */
export function parseApiEnv(env: Record<string, string | undefined>): ApiEnv {
  return parseEnv(ApiEnv, env);
}

export function apiConfigFromEnv(env: ApiEnv): ApiConfig {
  return {
    host: env.IX_API_HOST,
    port: env.IX_API_PORT,
    apiKeys: env.IX_API_KEYS,
    bodyLimitBytes: env.IX_API_BODY_LIMIT_BYTES,
    retryAfterSeconds: env.IX_API_RETRY_AFTER_SECONDS,
    submitQueueTimeoutMs: env.IX_API_DB_CONNECT_TIMEOUT_MS,
  };
}

/** The pool settings `ix api` connects with, from the same environment. */
export function apiPoolOptionsFromEnv(env: ApiEnv) {
  return {
    max: env.IX_API_DB_POOL_SIZE,
    connectionTimeoutMillis: env.IX_API_DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMillis: env.IX_API_STATEMENT_TIMEOUT_MS,
    applicationName: "ix-api",
  };
}


/** The one place the API reads process.env. */
export function loadApiEnv(): ApiEnv {
  return parseApiEnv(process.env);
}
