import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { Job } from "@ix/contracts";
import type { Database } from "@ix/store";
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
import { createAuthenticator, type Caller } from "./auth";
import type { ApiConfig } from "./config";
import { problem, problemForError, RequestValidationError, sendProblem } from "./problems";
import { healthRoutes } from "./routes/health";
import { jobControlRoutes } from "./routes/job-control";
import { jobRoutes } from "./routes/jobs";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook on /jobs routes. */
    caller: Caller;
  }
}

export interface BuildAppOptions {
  db: Database;
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
 * Job). Measured on `POST /jobs`: +7–18 % req/s (BENCHMARKS.md). Every other
 * response (problems, lists, unions) is still validated against its schema.
 */
const serializerCompiler: FastifySerializerCompiler<z.ZodType> = (route) =>
  route.schema === Job ? (data) => JSON.stringify(data) : zodSerializerCompiler(route);

/**
 * The REST API over the given database. Nothing binds here: tests
 * call `app.inject`, and `startApi` listens.
 */
export async function buildApp({ db, config, logger }: BuildAppOptions): Promise<ApiApp> {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: config.bodyLimitBytes,
    // Errors raised before routing (a malformed URL) get problem+json like the rest.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, problemForError(error, request, config.retryAfterSeconds).problem);
    },
  }).withTypeProvider<ZodTypeProvider>();

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

  const authenticated = config.apiKeys.length > 0;
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
        ? { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A key from IX_API_KEYS" } } }
        : {},
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes, { db, retryAfterSeconds: config.retryAfterSeconds });

  const authenticate = createAuthenticator(config.apiKeys);
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
    await scope.register(jobRoutes, { db, authenticated, submitQueueTimeoutMs: config.submitQueueTimeoutMs });
    await scope.register(jobControlRoutes, { db, authenticated });
  });

  return app as unknown as ApiApp;
}
