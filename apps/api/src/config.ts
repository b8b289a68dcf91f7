/** One bearer key and whom it authenticates: a client (IX_API_KEYS) or an operator by name (IX_ADMIN_KEYS). */
export interface ApiKey {
  /** The client id, or the operator's name for an admin key. */
  clientId: string;
  key: string;
}

/** What the API needs to run, already parsed (tests build it directly). */
export interface ApiConfig {
  /** Bind address; without keys it must be loopback. */
  host: string;
  port: number;
  /** Empty: no auth, every job visible to every caller, loopback only. */
  apiKeys: readonly ApiKey[];
  /** Operators (IX_ADMIN_KEYS): they read and act on every client's jobs and sign in to /ui. */
  adminKeys: readonly ApiKey[];
  /** Signs /ui sessions (IX_UI_SESSION_SECRET); absent, each process draws a random one. */
  uiSessionSecret?: string;
  /** The largest request body, and so the largest one submission, in bytes. */
  bodyLimitBytes: number;
  /** The largest POST /jobs/batch body; each item is still held to `bodyLimitBytes`. */
  batchBodyLimitBytes: number;
  /** A use_case is known when a worker serving it was seen within this many days (IX_WORKER_REGISTRY_DAYS). */
  workerRegistryDays: number;
  /** Sent as Retry-After with every 503. */
  retryAfterSeconds: number;
  /**
   * Longest a submission waits in the batcher for the statement ahead of it
   * (IX_API_DB_CONNECT_TIMEOUT_MS, like a wait for a pooled connection): past
   * it the request is answered 503 instead of queueing behind a stuck batch.
   */
  submitQueueTimeoutMs: number;
  /**
   * Connection limits against clients that hold sockets open (slow headers,
   * slow bodies, idle connections): each bounds how long one connection can
   * occupy a file descriptor, and `maxConnections` bounds how many can.
   * Longest wait for a request's headers (capped at `requestTimeoutMs`).
   */
  headersTimeoutMs: number;
  /** Longest wait for a whole request, headers and body. */
  requestTimeoutMs: number;
  /** How long a keep-alive connection may sit idle between requests. */
  keepAliveTimeoutMs: number;
  /** How long a connection may make no progress at all (e.g. a client that stops reading the response). */
  idleTimeoutMs: number;
  /** Open connections this process accepts; further ones are closed at once. */
  maxConnections: number;
  /**
   * IX_CALLBACK_ALLOWED_HOSTS: non-public callback targets allowed anyway. The
   * API refuses a callback_url whose host is a non-public IP literal not listed here.
   */
  callbackAllowedHosts: readonly string[];
}

/** Defaults for everything but what a caller passes; handy for tests and embedding. */
export function apiConfig(overrides: Partial<ApiConfig> = {}): ApiConfig {
  return {
    host: "127.0.0.1",
    port: 8080,
    apiKeys: [],
    adminKeys: [],
    bodyLimitBytes: 1_048_576,
    batchBodyLimitBytes: 16_777_216,
    workerRegistryDays: 7,
    retryAfterSeconds: 2,
    submitQueueTimeoutMs: 2_000,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    idleTimeoutMs: 60_000,
    maxConnections: 1_000,
    callbackAllowedHosts: [],
    ...overrides,
  };
}

const LOOPBACK_NAMES = new Set(["localhost", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]);

export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase();
  return LOOPBACK_NAMES.has(h) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Whether callers must prove who they are: any client or operator key is configured. */
export function requiresKeys(config: Pick<ApiConfig, "apiKeys" | "adminKeys">): boolean {
  return config.apiKeys.length > 0 || config.adminKeys.length > 0;
}

/**
 * Without keys the API authenticates no one, so it may only be reachable from
 * this machine. Throws before anything binds.
 */
export function assertSafeBind(config: Pick<ApiConfig, "host" | "apiKeys" | "adminKeys">): void {
  if (!requiresKeys(config) && !isLoopbackHost(config.host)) {
    throw new Error(
      `refusing to listen on ${config.host} without IX_API_KEYS: an API without keys serves every job to anyone who can reach it. ` +
        "Set IX_API_KEYS (client_id:key pairs) or bind IX_API_HOST to a loopback address such as 127.0.0.1.",
    );
  }
}
