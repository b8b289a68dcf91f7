import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { Job } from "@ix/contracts";
import { createCallbackTargetPolicy } from "@ix/contracts/callback-target";
import { type Database, logSerializers, workers } from "@ix/store";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifySchemaCompiler,
  type FastifySerializerCompiler,
} from "fastify";
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler as zodSerializerCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { z } from "zod";
import { createAuthenticator, type Caller } from "./auth.ts";
import { type ApiConfig, requiresKeys } from "./config.ts";
import { PROBLEM_CONTENT_TYPE, problem, problemForError, RequestValidationError, sendProblem } from "./problems.ts";
import { batchRoutes } from "./routes/batch.ts";
import { healthRoutes } from "./routes/health.ts";
import { jobControlRoutes } from "./routes/job-control.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { createApiMetrics } from "./metrics.ts";
import { createReads } from "./reads.ts";
import { submitJobRequest } from "./schemas.ts";
import { dashboard } from "./ui/dashboard.ts";
import { UseCaseRegistry } from "./use-case-registry.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook on /jobs routes. */
    caller: Caller;
  }
}

export interface BuildAppOptions {
  /** The primary: every write, and every read that must see the caller's own writes. */
  db: Database;
  /** A standby for the reads listed in reads.ts (IX_POSTGRES_READ_URL); without it they run on `db`. */
  replica?: Database | undefined;
  config: ApiConfig;
  /** Structured logs; none when absent. */
  logger?: Logger;
}

export type ApiApp = FastifyInstance;

/** Keeps the ZodError itself, so the problem can list every field (see RequestValidationError). */
const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema }) =>
  (data) => {
    const result = schema.safeParse(data);
    return result.success ? { value: result.data } : { error: new RequestValidationError(result.error) };
  };

/**
 * Responses documented as exactly the Job contract are written without a
 * second zod parse: every Job a handler sends is the store's `toJob` output,
 * which already ran `Job.parse` (and the type provider types `reply.send` as
 * Job); the gain is in BENCHMARKS.md ("HTTP submit"). Every other
 * response (problems, lists, unions) is still validated against its schema.
 */
const serializerCompiler: FastifySerializerCompiler<z.ZodType> = (route) =>
  route.schema === Job ? (data) => JSON.stringify(data) : zodSerializerCompiler(route);

/** Statuses after which the connection is closed: the caller has no key, or sent a body the API will not read. */
const CLOSE_AFTER = new Set([401, 413, 415]);

/**
 * Caps open connections: Node closes every connection past the cap as soon as
 * it is accepted, so a flood of sockets cannot take the process's file
 * descriptors (the timeouts bound how long each one stays). Logged at most
 * every 10 s, with the count, so a flood does not flood the log too.
 */
function limitConnections(app: FastifyInstance, maxConnections: number): void {
  app.server.maxConnections = maxConnections;
  let dropped = 0;
  let lastLoggedAt = 0;
  app.server.on("drop", () => {
    dropped++;
    const now = Date.now();
    if (now - lastLoggedAt < 10_000) return;
    app.log.warn({ dropped, maxConnections }, "connection limit reached: closing new connections (IX_API_MAX_CONNECTIONS)");
    dropped = 0;
    lastLoggedAt = now;
  });
}

/**
 * What Node reports before a request exists (a header or request deadline
 * missed, a malformed request line): answered as problem+json like every
 * other error, then the socket is destroyed.
 */
function answerClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const timedOut = error.code === "ERR_HTTP_REQUEST_TIMEOUT";
  const body = timedOut
    ? problem("request-timeout", "the request did not arrive in time; the connection is closed")
    : error.code === "HPE_HEADER_OVERFLOW"
      ? { type: "about:blank", title: STATUS_CODES[431] ?? "Request Header Fields Too Large", status: 431 }
      : problem("bad-request", "the request could not be parsed as HTTP");
  this.log.debug({ err: error }, "client error before routing");
  // Node's own rule: no second status line once a response has begun on this socket.
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${body.status} ${STATUS_CODES[body.status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}

/**
 * The REST API over the given database. Nothing binds here: tests
 * call `app.inject`, and `startApi` listens.
 */
export async function buildApp({ db, replica, config, logger }: BuildAppOptions): Promise<ApiApp> {
  const reads = createReads({ primary: db, replica });
  // Node checks the header and request deadlines on this period; a quarter of the
  // shorter one closes a late connection within 1.25 times its deadline.
  const headersTimeoutMs = Math.min(config.headersTimeoutMs, config.requestTimeoutMs);
  const checkingIntervalMs = Math.max(50, Math.min(5_000, Math.floor(headersTimeoutMs / 4)));
  const app = Fastify({
    // Every error logged by the API, Fastify's own included, goes through the one
    // log-safe serializer: a database error carries the client's documents and secrets.
    ...(logger ? { loggerInstance: logger.child({}, { serializers: logSerializers }) as FastifyBaseLogger } : { logger: false }),
    bodyLimit: config.bodyLimitBytes,
    // Fastify and Node leave these off or loose by default, so a client sending a byte
    // every few seconds, or nothing at all, held a connection forever (apps/api/README.md,
    // "Connections and a reverse proxy").
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionTimeout: config.idleTimeoutMs,
    http: { headersTimeout: headersTimeoutMs, connectionsCheckingInterval: checkingIntervalMs },
    clientErrorHandler: answerClientError,
    // Errors raised before routing (a malformed URL) get problem+json like the rest.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, problemForError(error, request, config.retryAfterSeconds).problem);
    },
  }).withTypeProvider<ZodTypeProvider>();
  limitConnections(app, config.maxConnections);

  // Every answer is counted by its route pattern, never its URL: /jobs/:job_id is one series, not one per job.
  const metrics = createApiMetrics({ db: reads.database("metrics"), workerRegistryDays: config.workerRegistryDays });
  app.addHook("onResponse", async (request, reply) => {
    metrics.observeRequest({
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status: reply.statusCode,
      seconds: reply.elapsedTime / 1000,
    });
  });

  // An answer that leaves the request body unread (401 before the body, 413 on the
  // declared length, 415) would otherwise keep the socket reading whatever the client
  // trickles; with Connection: close, Node ends and destroys the socket once the
  // response is flushed. The same for any answer sent while the body is still arriving.
  app.addHook("onSend", async (request, reply, payload) => {
    if (CLOSE_AFTER.has(reply.statusCode) || request.raw.complete === false) reply.header("connection", "close");
    return payload;
  });

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: without Fastify's text/plain parser, every other type is a 415.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((error, request, reply) => {
    const { problem: body, headers } = problemForError(error, request, config.retryAfterSeconds);
    if (headers) reply.headers(headers);
    return sendProblem(reply, body);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem("not-found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );

  const authenticated = requiresKeys(config);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "ix",
        version: "0.1.0",
        description:
          "Submit extraction jobs, read them back, list them, cancel and retry them. Errors are RFC 9457 application/problem+json; " +
          "problem types are https://ix.dev/problems/<kind>.",
      },
      components: authenticated
        ? {
            securitySchemes: {
              bearer: {
                type: "http",
                scheme: "bearer",
                description:
                  "A client key from IX_API_KEYS: that client's jobs only (another client's job is a 404). " +
                  "Or an operator's key from IX_ADMIN_KEYS: every client's jobs, on the same routes.",
              },
            },
          }
        : {},
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes, { db, retryAfterSeconds: config.retryAfterSeconds });
  await app.register(metricsRoutes, { metrics });

  const authenticate = createAuthenticator(config);
  await app.register(async (scope) => {
    // Replaced by the hook below before any handler reads it.
    scope.decorateRequest("caller", null as never);
    // onRequest runs before the body is read: an unauthenticated caller cannot make the API parse anything.
    scope.addHook("onRequest", async (request, reply) => {
      const result = authenticate(request.headers.authorization);
      if (!result.ok) {
        reply.header("www-authenticate", 'Bearer realm="ix"');
        return sendProblem(
          reply,
          problem("unauthorized", result.reason === "missing" ? "send Authorization: Bearer <key>" : "this key is not configured"),
        );
      }
      request.caller = result.caller;
    });
    // One schema and one registry for both ways in, so a batch item is judged exactly as POST /jobs judges it.
    const submitSchema = submitJobRequest(createCallbackTargetPolicy(config.callbackAllowedHosts));
    const registry = new UseCaseRegistry(() => workers.knownUseCases(db, { withinDays: config.workerRegistryDays }));
    await scope.register(jobRoutes, {
      reads,
      authenticated,
      submitQueueTimeoutMs: config.submitQueueTimeoutMs,
      submitSchema,
      registry,
    });
    await scope.register(batchRoutes, {
      db,
      authenticated,
      submitSchema,
      registry,
      bodyLimitBytes: config.bodyLimitBytes,
      batchBodyLimitBytes: config.batchBodyLimitBytes,
    });
    await scope.register(jobControlRoutes, { db, authenticated });
  });
  // Its own scope: the dashboard's form parser, sessions and HTML errors stay out of the JSON API's way.
  await app.register(async (scope) => dashboard(scope, { reads, config }));

  return app as unknown as ApiApp;
}
