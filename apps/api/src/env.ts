import { ClientId, envDefault, envVar, optionalEnv, parseEnv, workerRegistryDaysEnv } from "@ix/contracts";
import { LOG_FORMATS } from "@ix/process";
import { parseAllowedHosts } from "@ix/contracts/callback-target";
import { POOL_MODES } from "@ix/store";
import { z } from "zod";
import type { ApiConfig, ApiKey } from "./config.ts";

/** The shortest bearer key accepted: shorter ones are guessable (`openssl rand -hex 24` gives 48). */
export const MIN_API_KEY_LENGTH = 24;

/**
 * `<owner>:key` pairs, comma-separated: `client_id:key` in IX_API_KEYS, `name:key` in IX_ADMIN_KEYS. An
 * owner may hold several keys (rotation); one key may not name two owners. An empty entry (`","`, a
 * trailing comma) is an error rather than dropped, so a typo can never leave the API without keys, i.e.
 * without auth.
 *
 * Errors name a pair by its position only: a pair written key-first would put
 * the key where the owner belongs, so neither part is ever echoed, except
 * the owner of an earlier, fully valid pair.
 */
function keyPairs(owner: "client_id" | "name") {
  return z.string().transform((value, ctx): ApiKey[] => {
    const keys: ApiKey[] = [];
    const owners = new Map<string, string>();
    for (const [index, raw] of value.split(",").entries()) {
      const pair = raw.trim();
      const where = `pair ${index + 1}`;
      const colon = pair.indexOf(":");
      const clientId = colon < 0 ? "" : pair.slice(0, colon);
      const key = colon < 0 ? "" : pair.slice(colon + 1);
      if (pair.length === 0) {
        ctx.addIssue({ code: "custom", message: `${where} is empty (a stray comma?); every entry must be ${owner}:key` });
      } else if (colon < 0) {
        ctx.addIssue({ code: "custom", message: `${where} is not ${owner}:key` });
      } else if (!ClientId.safeParse(clientId).success) {
        ctx.addIssue({ code: "custom", message: `${where}: ${owner} must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (1-64); the ${owner} comes first` });
      } else if (/\s/.test(key)) {
        ctx.addIssue({ code: "custom", message: `${where}: the key contains whitespace, which a bearer token cannot carry` });
      } else if (key.length < MIN_API_KEY_LENGTH) {
        ctx.addIssue({
          code: "custom",
          message: `${where}: the key (after the colon) must be at least ${MIN_API_KEY_LENGTH} characters`,
        });
      } else if (owners.has(key) && owners.get(key) !== clientId) {
        ctx.addIssue({ code: "custom", message: `${where}: the same key is already given to ${owner === "client_id" ? "client " : ""}"${owners.get(key)}"` });
      } else {
        owners.set(key, clientId);
        keys.push({ clientId, key });
      }
    }
    return keys;
  });
}

/** Every variable `ix api` reads; the keys are the variable names. */
export const ApiEnv = z.object({
  // The database. Required by `ix api`; `ix start` supplies its embedded one.
  IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()),
  // A hot standby of that database (streaming replication) for the reads that can lag: listings, /metrics and the
  // dashboard's lists (apps/api/src/reads.ts has the list). Unset, every read runs on IX_POSTGRES_URL.
  IX_POSTGRES_READ_URL: optionalEnv(envVar.postgresUrl()),
  // `transaction` when IX_POSTGRES_URL reaches a transaction pooler (PgBouncer pool_mode=transaction):
  // no session state on its connections (docs/ARCHITECTURE.md, "Behind a pooler").
  IX_POSTGRES_POOL_MODE: envDefault(z.enum(POOL_MODES), "session"),
  // Bind address. Without IX_API_KEYS only a loopback address is allowed.
  IX_API_HOST: envDefault(z.string().trim().min(1), "127.0.0.1"),
  IX_API_PORT: envDefault(envVar.int(0, 65_535), 8080),
  // client_id:key pairs; when set, every /jobs request needs `Authorization: Bearer <key>`.
  IX_API_KEYS: envDefault(keyPairs("client_id"), []),
  // name:key pairs of operators: their keys read and act on every client's jobs and sign in to /ui.
  // Setting only these also turns auth on (then no client key is accepted).
  IX_ADMIN_KEYS: envDefault(keyPairs("name"), []),
  // Signs /ui session cookies, so sessions hold across API processes behind one address and across
  // restarts; unset, each process draws its own at start (a restart signs everyone out).
  IX_UI_SESSION_SECRET: optionalEnv(z.string().min(32, "must be at least 32 characters")),
  // Larger request bodies are refused with 413 before they are parsed.
  IX_API_BODY_LIMIT_BYTES: envDefault(envVar.int(1_024, 100 * 1_048_576), 1_048_576),
  // The same for POST /jobs/batch, which carries up to 1,000 submissions; each item is still
  // held to IX_API_BODY_LIMIT_BYTES (a larger one is that item's 413).
  IX_API_BATCH_BODY_LIMIT_BYTES: envDefault(envVar.int(1_024, 1_024 * 1_048_576), 16_777_216),
  // Connections this API process keeps; a request that finds none free within
  // IX_API_DB_CONNECT_TIMEOUT_MS is answered 503 rather than queued forever.
  IX_API_DB_POOL_SIZE: envDefault(envVar.int(1, 1_000), 10),
  // Bounds connecting and waiting for a pooled connection, so a stopped database answers 503 quickly.
  IX_API_DB_CONNECT_TIMEOUT_MS: envDefault(envVar.int(50, 60_000), 2_000),
  // Server-side cap on any one statement, so a stuck query answers 503 instead of hanging.
  IX_API_STATEMENT_TIMEOUT_MS: envDefault(envVar.int(50, 600_000), 5_000),
  // A statement hearing nothing from the server this long closes its connection as dead (a network
  // partition: TCP alone would wait minutes); 0 = never. Above IX_API_STATEMENT_TIMEOUT_MS.
  IX_POSTGRES_SOCKET_TIMEOUT_MS: envDefault(envVar.int(0, 3_600_000), 30_000),
  // Sent as Retry-After with every 503.
  IX_API_RETRY_AFTER_SECONDS: envDefault(envVar.int(1, 3_600), 2),
  IX_LOG_LEVEL: envDefault(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
  // JSON lines, or readable lines (pretty); unset: pretty when stdout is a terminal.
  IX_LOG_FORMAT: optionalEnv(z.enum(LOG_FORMATS)),
  // Longest wait for a request's headers; a slow-header client is answered 408 and
  // disconnected. Never longer than IX_API_REQUEST_TIMEOUT_MS.
  IX_API_HEADERS_TIMEOUT_MS: envDefault(envVar.int(100, 600_000), 10_000),
  // Longest wait for a whole request (headers and body), so a body trickled a byte at a
  // time cannot hold a connection: 408 and disconnected.
  IX_API_REQUEST_TIMEOUT_MS: envDefault(envVar.int(100, 600_000), 30_000),
  // How long a keep-alive connection may sit idle between requests before it is closed.
  IX_API_KEEP_ALIVE_TIMEOUT_MS: envDefault(envVar.int(100, 600_000), 5_000),
  // A connection with no traffic either way for this long is closed (e.g. a client that
  // stops reading its response). Keep it above IX_API_STATEMENT_TIMEOUT_MS.
  IX_API_IDLE_TIMEOUT_MS: envDefault(envVar.int(100, 3_600_000), 60_000),
  // Open connections one API process accepts; past it new connections are closed at once.
  // Keep it under the process's file-descriptor limit (ulimit -n) less the pool.
  IX_API_MAX_CONNECTIONS: envDefault(envVar.int(1, 1_000_000), 1_000),
  // Hosts, IP addresses and CIDRs callbacks may reach although not public. The API refuses
  // at submit a callback_url whose host is a non-public IP literal not listed here (400);
  // the worker checks every target again on the address it connects to.
  // A submission's use_case must be served by a worker seen within this many days, else 422.
  IX_WORKER_REGISTRY_DAYS: workerRegistryDaysEnv,
  IX_CALLBACK_ALLOWED_HOSTS: envDefault(
    envVar.list().superRefine((entries, ctx) => {
      const parsed = parseAllowedHosts(entries);
      if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.error });
    }),
    [],
  ),
}).superRefine((env, ctx) => {
  // A bound below the statement timeout would close connections of statements the server is still allowed to run.
  if (env.IX_POSTGRES_SOCKET_TIMEOUT_MS > 0 && env.IX_POSTGRES_SOCKET_TIMEOUT_MS <= env.IX_API_STATEMENT_TIMEOUT_MS) {
    ctx.addIssue({
      code: "custom",
      path: ["IX_POSTGRES_SOCKET_TIMEOUT_MS"],
      message: `must be above IX_API_STATEMENT_TIMEOUT_MS (${env.IX_API_STATEMENT_TIMEOUT_MS}), or 0`,
    });
  }
  // A key in both lists would make its holder a client and an operator at once; neither list wins silently.
  const clientKeys = new Set(env.IX_API_KEYS.map(({ key }) => key));
  for (const [index, { key }] of env.IX_ADMIN_KEYS.entries()) {
    if (clientKeys.has(key)) {
      ctx.addIssue({ code: "custom", path: ["IX_ADMIN_KEYS"], message: `pair ${index + 1}: the key is also in IX_API_KEYS; an operator key must be its own` });
    }
  }
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
    adminKeys: env.IX_ADMIN_KEYS,
    ...(env.IX_UI_SESSION_SECRET === undefined ? {} : { uiSessionSecret: env.IX_UI_SESSION_SECRET }),
    bodyLimitBytes: env.IX_API_BODY_LIMIT_BYTES,
    batchBodyLimitBytes: env.IX_API_BATCH_BODY_LIMIT_BYTES,
    workerRegistryDays: env.IX_WORKER_REGISTRY_DAYS,
    retryAfterSeconds: env.IX_API_RETRY_AFTER_SECONDS,
    submitQueueTimeoutMs: env.IX_API_DB_CONNECT_TIMEOUT_MS,
    headersTimeoutMs: env.IX_API_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: env.IX_API_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: env.IX_API_KEEP_ALIVE_TIMEOUT_MS,
    idleTimeoutMs: env.IX_API_IDLE_TIMEOUT_MS,
    maxConnections: env.IX_API_MAX_CONNECTIONS,
    callbackAllowedHosts: env.IX_CALLBACK_ALLOWED_HOSTS,
  };
}

/** The pool settings `ix api` connects with, from the same environment. */
export function apiPoolOptionsFromEnv(env: ApiEnv) {
  return {
    max: env.IX_API_DB_POOL_SIZE,
    connectionTimeoutMillis: env.IX_API_DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMillis: env.IX_API_STATEMENT_TIMEOUT_MS,
    socketTimeoutMillis: env.IX_POSTGRES_SOCKET_TIMEOUT_MS,
    poolMode: env.IX_POSTGRES_POOL_MODE,
    applicationName: "ix-api",
  };
}


/** The one place the API reads process.env. */
export function loadApiEnv(): ApiEnv {
  return parseApiEnv(process.env);
}
