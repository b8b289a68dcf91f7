import { BatchResults, SubmitJobsBatchBody, traceContextFromHeaders } from "@ix/contracts";
import { jobs, type Database } from "@ix/store";
import type { FastifySchemaCompiler } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { RequestValidationError } from "../problems.ts";
import { BatchEnvelope, type submitJobRequest } from "../schemas.ts";
import { judgeSubmissions, parseSubmission } from "../submission.ts";
import type { UseCaseRegistry } from "../use-case-registry.ts";
import { describedProblemResponses, jsonResponse } from "./responses.ts";

export interface BatchRoutesOptions {
  db: Database;
  /** Whether the API runs with keys; then the route needs a bearer key. */
  authenticated: boolean;
  /** The POST /jobs body schema, which every item is parsed with. */
  submitSchema: ReturnType<typeof submitJobRequest>;
  registry: UseCaseRegistry;
  /** The largest one submission may be (IX_API_BODY_LIMIT_BYTES); a larger item is refused 413. */
  bodyLimitBytes: number;
  /** The largest a whole batch may be (IX_API_BATCH_BODY_LIMIT_BYTES). */
  batchBodyLimitBytes: number;
}

/** Validates the envelope only (see BatchEnvelope); the schema the route documents is not the one it checks. */
const envelopeValidator: FastifySchemaCompiler<unknown> = () => (data) => {
  const result = BatchEnvelope.safeParse(data);
  return result.success ? { value: result.data } : { error: new RequestValidationError(result.error) };
};

/**
 * `POST /jobs/batch`: many submissions in one request, each judged exactly as
 * `POST /jobs` would judge it alone, all stored by one statement
 * (apps/api/README.md, "Submitting").
 */
export const batchRoutes: FastifyPluginAsyncZod<BatchRoutesOptions> = async (
  app,
  { db, authenticated, submitSchema, registry, bodyLimitBytes, batchBodyLimitBytes },
) => {
  app.post(
    "/jobs/batch",
    {
      bodyLimit: batchBodyLimitBytes,
      validatorCompiler: envelopeValidator,
      schema: {
        summary: "Submit many jobs",
        description:
          "1 to 1,000 submissions, each judged as if sent alone to POST /jobs, answered in one 200 whose results are in " +
          "input order: 201 or 200 with the job, or 400, 403, 409, 413 or 422 with the problem POST /jobs would have " +
          "answered (403: ix_client_id is not the key's client; 413: the item alone is over IX_API_BODY_LIMIT_BYTES). " +
          "Valid items are stored even when others are not, by one statement; a request_id repeated within the batch " +
          "is judged against its first occurrence. A body that is not {jobs: [...]} with 1 to 1,000 items is a 400 for " +
          "the whole request; when the database is unavailable the whole request is a 503, and retrying it is safe. " +
          "A traceparent (and tracestate) header is stored with every job the batch creates, as for POST /jobs.",
        tags: ["jobs"],
        security: authenticated ? [{ bearer: [] }] : [],
        body: SubmitJobsBatchBody,
        response: {
          200: jsonResponse("One result per submitted item, in input order", BatchResults),
          ...describedProblemResponses(
            {
              400: "The body is not {jobs: [...]} with 1 to 1,000 items, or not JSON",
              413: "Body larger than IX_API_BATCH_BODY_LIMIT_BYTES",
            },
            400,
            ...(authenticated ? [401] : []),
            413,
            415,
            503,
          ),
        },
      },
    },
    async (request, reply) => {
      // The route validates the envelope only: the items are as they came.
      const items: readonly unknown[] = request.body.jobs;
      const declared = Number(request.headers["content-length"]);
      // No item can be larger than the whole body: only a batch over the single limit has items worth measuring.
      const measure = !(declared <= bodyLimitBytes);
      const results = await judgeSubmissions(
        items.map((item) => parseSubmission(submitSchema, item, { limitBytes: bodyLimitBytes, measure })),
        {
          caller: request.caller,
          registry,
          store: (params) => jobs.insertPendingManySettled(db, params),
          // Every item joins the one trace of the request that carried it.
          trace: traceContextFromHeaders(request.headers),
        },
      );
      return reply.code(200).send({ results });
    },
  );
};
