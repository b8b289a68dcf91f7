import { Problem } from "@ix/contracts";
import { IxError, IxNetworkError, IxProblemError, IxTimeoutError } from "./errors.ts";

export interface TransportOptions {
  baseUrl: string | URL;
  apiKey?: string | undefined;
  fetch?: typeof globalThis.fetch | undefined;
  timeoutMs?: number | undefined;
}

export interface CallOptions {
  /** Aborts the call; it then rejects with the signal's reason, as fetch does. */
  signal?: AbortSignal | undefined;
}

export interface Answer {
  status: number;
  json: unknown;
}

export type Call = (
  method: "GET" | "POST",
  path: string,
  options?: CallOptions & { body?: unknown; query?: Record<string, string | number | undefined> },
) => Promise<Answer>;

export const DEFAULT_TIMEOUT_MS = 30_000;

/** The base URL without a trailing slash, so a path prefix (`https://gateway/ix`) is kept in front of `/jobs`. */
function normalizeBase(baseUrl: string | URL): string {
  const text = String(baseUrl);
  if (!URL.canParse(text) || !/^https?:$/.test(new URL(text).protocol)) {
    throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(text)}`);
  }
  const url = new URL(text);
  if (url.search || url.hash) throw new TypeError(`baseUrl must not carry a query or fragment, got ${JSON.stringify(text)}`);
  return url.href.replace(/\/+$/, "");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * One function every method goes through: it adds the key, bounds the call
 * by `timeoutMs` (the answer's body included), and turns every failure into
 * one of the package's errors. A 2xx answer's body is returned parsed, not
 * checked against the contracts: a newer API that adds a field must not
 * break an older client (see the package README).
 */
export function createTransport(options: TransportOptions): { base: string; call: Call } {
  const base = normalizeBase(options.baseUrl);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;

  const call: Call = async (method, path, { body, query, signal } = {}) => {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) search.set(key, String(value));
    const url = `${base}${path}${search.size > 0 ? `?${search}` : ""}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    const failed = (error: unknown): Error => {
      // The caller's own abort is theirs to recognise: its reason, untouched.
      if (signal?.aborted) return signal.reason as Error;
      if (timeout.aborted) return new IxTimeoutError(`${method} ${path}: no complete answer from the ix API at ${base} within ${timeoutMs} ms`, timeoutMs);
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : String((error as Error)?.message ?? error);
      return new IxNetworkError(`cannot reach the ix API at ${base}: ${reason}`, { cause: error });
    };

    let response: Response;
    let text: string;
    try {
      response = await fetchImpl(url, {
        method,
        headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      throw failed(error);
    }

    const json = parseJson(text);
    if (!response.ok) {
      const problem = Problem.safeParse(json);
      throw new IxProblemError(response.status, problem.success ? problem.data : null, { method, path }, response.headers, text);
    }
    if (json === undefined) {
      throw new IxError(`${method} ${path} answered ${response.status} with a body that is not JSON: is ${base} the ix API?`);
    }
    return { status: response.status, json };
  };

  return { base, call };
}
