import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, type Socket } from "node:net";
import type { Job, TraceContext } from "@ix/contracts";
import { type CallbackSendResult, logUrl } from "@ix/store";
import { Agent, buildConnector, type Dispatcher, ProxyAgent, request } from "undici";
import type { CallbackTargetPolicy } from "./callback-target-policy.ts";
import { webhookHeaders } from "./webhook-signature.ts";

/** Resolves a hostname to every address it has (injectable so tests can play a hostile DNS). */
export type ResolveHost = (hostname: string) => Promise<Array<{ address: string }>>;

const systemResolve: ResolveHost = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** A target the policy refused; never retried, since resending cannot change where it points. */
export class CallbackTargetRefusedError extends Error {
  readonly code = "IX_CALLBACK_TARGET_REFUSED";
  constructor(message: string) {
    super(message);
    this.name = "CallbackTargetRefusedError";
  }
}

/**
 * A connector that resolves the host itself, refuses the connection if any
 * resolved address is non-public, and then connects to the checked
 * address, so no second DNS answer (rebinding) can slip in between the check
 * and the connect. The peer address of the open socket is checked once more.
 */
export function guardedConnector({
  policy,
  resolve,
  timeoutMs,
}: {
  policy: CallbackTargetPolicy;
  resolve: ResolveHost;
  timeoutMs: number;
}): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    const hostname = options.hostname;
    const resolved = isIP(hostname) ? Promise.resolve([{ address: hostname }]) : resolve(hostname);
    resolved.then(
      (addresses) => {
        const first = addresses[0];
        if (!first) return callback(new Error(`${hostname} resolved to no address`), null);
        for (const { address } of addresses) {
          const refusal = policy.refusal(hostname, address);
          if (refusal !== null) return callback(new CallbackTargetRefusedError(refusal), null);
        }
        const servername = options.servername ?? (isIP(hostname) ? undefined : hostname);
        connect({ ...options, hostname: first.address, ...(servername ? { servername } : {}) }, (error, socket) => {
          if (error !== null) return callback(error, null);
          const peer = (socket as Socket).remoteAddress;
          const refusal = peer === undefined ? "connected socket has no peer address" : policy.refusal(hostname, peer);
          if (refusal !== null) {
            socket.destroy();
            return callback(new CallbackTargetRefusedError(refusal), null);
          }
          callback(null, socket);
        });
      },
      (error: unknown) => callback(new Error(`cannot resolve ${hostname}`, { cause: error }), null),
    );
  };
}

/**
 * What one POST came to (`lifecycle.CallbackSendResult`): `permanent` when
 * retrying cannot help (a refused target); the receiver's status and
 * `Retry-After` when it answered.
 */
export type DeliveryResult = CallbackSendResult;

export interface CallbackSenderOptions {
  policy: CallbackTargetPolicy;
  /** Per-attempt budget: connect, headers and body (IX_CALLBACK_TIMEOUT_SECONDS). */
  timeoutMs: number;
  /** Decoded IX_CALLBACK_SECRET, or null to send unsigned. */
  secret: Buffer | null;
  /** How much of a non-2xx response body is read, for the error message; the rest is never read. */
  responseBodyCapBytes?: number;
  resolve?: ResolveHost;
  /**
   * An egress proxy (IX_CALLBACK_PROXY_URL): every delivery is tunnelled
   * through it with CONNECT. The proxy resolves names and enforces where
   * callbacks may go; the worker still refuses targets written as a
   * non-public IP address, the one check it can make without resolving.
   */
  proxyUrl?: string | null;
}

export interface CallbackSender {
  /** POSTs `job` to its callback_url once, with `trace` as its traceparent/tracestate headers. Never throws: every failure is a result. */
  send(job: Job, trace?: TraceContext | null): Promise<DeliveryResult>;
  /** Waits for requests in flight, or with `force` aborts them. */
  close(options?: { force?: boolean }): Promise<void>;
}

const DEFAULT_BODY_CAP = 4096;
/** How much of the receiver's body goes into callback_last_error. */
const ERROR_SNIPPET_CHARS = 200;

function describe(error: unknown, timeoutMs: number): { error: string; permanent: boolean } {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    if (current instanceof CallbackTargetRefusedError) return { error: `refused: ${current.message}`, permanent: true };
  }
  const proxied = error instanceof Error ? /^Proxy response \((\d{3})\) !== 200/.exec(error.message) : null;
  if (proxied) {
    // 403 is the proxy's policy refusing the target (as smokescreen answers): as final as our own refusal.
    const status = Number(proxied[1]);
    return { error: `${status === 403 ? "refused" : "failed"}: the egress proxy answered ${status} to CONNECT`, permanent: status === 403 };
  }
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
  const name = error instanceof Error ? error.name : undefined;
  if (name === "TimeoutError" || name === "AbortError" || code?.startsWith("UND_ERR_") && /TIMEOUT/.test(code)) {
    return { error: `no complete response within ${timeoutMs / 1000} s (IX_CALLBACK_TIMEOUT_SECONDS)`, permanent: false };
  }
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return { error: `${code ? `${code} ` : ""}${message}${cause}`, permanent: false };
}

/**
 * Sends Job JSON to callback URLs through one undici Agent whose connector
 * enforces the target policy. Redirects are never followed (undici follows
 * none without its redirect interceptor): a 3xx is a failed attempt.
 */
export function createCallbackSender(options: CallbackSenderOptions): CallbackSender {
  const { policy, timeoutMs, secret } = options;
  const cap = options.responseBodyCapBytes ?? DEFAULT_BODY_CAP;
  const proxyUrl = options.proxyUrl ?? null;
  const common = {
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    // Keep-alive across retries is of little use and would pin sockets to receivers.
    keepAliveTimeout: 1_000,
  };
  const agent: Dispatcher =
    proxyUrl === null
      ? new Agent({ ...common, connect: guardedConnector({ policy, resolve: options.resolve ?? systemResolve, timeoutMs }) })
      : // proxyTunnel: undici 8 forwards plain-http targets in absolute form unless told to tunnel, and an
        // egress proxy that only answers CONNECT (smokescreen) would see those; every delivery tunnels.
        new ProxyAgent({ ...common, uri: proxyUrl, proxyTunnel: true, proxyTls: { timeout: timeoutMs }, requestTls: { timeout: timeoutMs } });

  async function send(job: Job, trace: TraceContext | null = null): Promise<DeliveryResult> {
    if (job.callback_url === null) return { ok: false, error: "job has no callback_url", permanent: true };
    if (proxyUrl !== null) {
      const refusal = literalAddressRefusal(policy, job.callback_url);
      if (refusal !== null) return { ok: false, error: `refused: ${refusal}`, permanent: true };
    }
    const body = JSON.stringify(job);
    const headers = {
      "content-type": "application/json",
      "user-agent": "ix-worker",
      ...webhookHeaders({ key: secret, id: job.job_id, body, timestampSeconds: Math.floor(Date.now() / 1000) }),
      ...(trace === null ? {} : { traceparent: trace.traceparent, ...(trace.tracestate === null ? {} : { tracestate: trace.tracestate }) }),
    };
    try {
      const response = await request(job.callback_url, {
        dispatcher: agent,
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const status = response.statusCode;
      if (status >= 200 && status < 300) {
        // The verdict is in the status line; the body is never read.
        discard(response.body);
        return { ok: true, status };
      }
      const snippet = await readCapped(response.body, cap);
      // Origin and path only (a relative one resolved first): a redirect target's query string may carry a token.
      const location = headerValue(response.headers.location);
      const target = location === undefined ? "(no location)" : logUrl(URL.canParse(location, job.callback_url) ? new URL(location, job.callback_url).href : location);
      const where = status >= 300 && status < 400 ? ` redirect to ${target} not followed` : "";
      const text = snippet.trim().slice(0, ERROR_SNIPPET_CHARS);
      const retryAfter = retryAfterSeconds(headerValue(response.headers["retry-after"]), Date.now());
      return {
        ok: false,
        error: `HTTP ${status}${where}${text ? `: ${text}` : ""}`,
        summary: `HTTP ${status}${where}`,
        permanent: false,
        status,
        ...(retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {}),
      };
    } catch (error) {
      return { ok: false, ...describe(error, timeoutMs) };
    }
  }

  return { send, close: ({ force = false } = {}) => (force ? agent.destroy() : agent.close()) };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A `Retry-After` header in seconds from now: delay-seconds or an HTTP-date
 * (RFC 9110, 10.2.3). Anything else is ignored, as the RFC allows.
 */
export function retryAfterSeconds(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[a-z]{3},? /i.test(text)) return undefined;
  return Math.max(0, (at - nowMs) / 1000);
}

/** Through a proxy the worker resolves no names; it can still refuse a URL whose host is a non-public IP address. */
function literalAddressRefusal(policy: CallbackTargetPolicy, url: string): string | null {
  if (!URL.canParse(url)) return "callback URL cannot be parsed";
  const { hostname } = new URL(url);
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  return isIP(bare) === 0 ? null : policy.refusal(hostname, bare);
}

type Body = NodeJS.ReadableStream & { destroy(): unknown };

/**
 * Reads at most `cap` bytes of a body, then destroys it so the rest never
 * crosses the wire into memory. A read error ends the snippet early: the
 * status code already decided the attempt, the body only decorates the reason.
 */
function readCapped(body: Body, cap: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = () => resolve(Buffer.concat(chunks).toString("utf8"));
    body.on("data", (chunk: Buffer) => {
      chunks.push(chunk.subarray(0, cap - received));
      received += chunk.length;
      if (received >= cap) {
        discard(body);
        finish();
      }
    });
    body.once("end", finish);
    body.once("error", finish);
  });
}

/**
 * Destroys a response body we will not read. undici reports that as an
 * aborted request on the stream: our own doing, so only that is ignored.
 */
function discard(body: Body): void {
  body.on("error", (error: Error) => {
    const code = "code" in error ? error.code : undefined;
    if (code !== "UND_ERR_ABORTED" && code !== "ABORT_ERR") throw error;
  });
  body.destroy();
}
