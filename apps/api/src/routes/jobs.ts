import { Job, JobList, traceContextFromHeaders } from "@ix/contracts";
import { jobs } from "@ix/store";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { type Caller, clientScope } from "../auth.ts";
import { problem, sendProblem } from "../problems.ts";
import type { Reads } from "../reads.ts";
import { JobIdParams, JobsQuery, type submitJobRequest, TraceHeaders } from "../schemas.ts";
import { judgeSubmissions } from "../submission.ts";
import { SubmissionBatcher } from "../submission-batcher.ts";
import type { UseCaseRegistry } from "../use-case-registry.ts";
import { jsonResponse, problemResponses } from "./responses.ts";

export interface JobRoutesOptions {
  /** The primary, and the replica for the list (reads.ts decides which read goes where). */
  reads: Reads;
  /** Whether the API runs with keys; then every route here needs a bearer key. */
  authenticated: boolean;
  /** See ApiConfig.submitQueueTimeoutMs. */
  submitQueueTimeoutMs: number;
  /** The POST /jobs body schema, with the callback target policy (schemas.ts). */
  submitSchema: ReturnType<typeof submitJobRequest>;
  /** Which use_cases workers serve; shared with POST /jobs/batch. */
  registry: UseCaseRegistry;
}

/** A job is visible to its own client, to an operator, or to anyone when the API runs without keys. */
function visibleTo(caller: Caller, job: Job): boolean {
  const scope = clientScope(caller);
  return scope === undefined || scope === job.client_id;
}

export const jobRoutes: FastifyPluginAsyncZod<JobRoutesOptions> = async (
  app,
  { reads, authenticated, submitQueueTimeoutMs, submitSchema, registry },
) => {
  const db = reads.primary;
  const security = authenticated ? [{ bearer: [] }] : [];
  const auth = authenticated ? [401] : [];
  const submissions = new SubmissionBatcher(db, { maxWaitMs: submitQueueTimeoutMs });
  // Answers every queued submission before the app (and then the pool) closes, so no request hangs.
  app.addHook("onClose", () => submissions.close());

  app.post(
    "/jobs",
    {
      schema: {
        summary: "Submit a job",
        description:
          "Idempotent on (ix_client_id, request_id): a resubmission of the same request answers 200 with the existing job; " +
          "the same request_id with a different request answers 409 naming the existing job_id. " +
          "priority, run_at and max_attempts are part of the comparison; callback_url is not: the first submission's wins. " +
          "A use_case no worker has registered within IX_WORKER_REGISTRY_DAYS answers 422 listing the known ones.",
        tags: ["jobs"],
        security,
        headers: TraceHeaders,
        body: submitSchema,
        response: {
          200: jsonResponse("The existing job for this (ix_client_id, request_id)", Job),
          201: jsonResponse("A new pending job; the Location header names it", Job),
          ...problemResponses(400, ...auth, ...(authenticated ? [403] : []), 409, 413, 415, 422, 503),
        },
      },
    },
    async (request, reply) => {
      const [verdict] = await judgeSubmissions([{ ok: true, body: request.body }], {
        caller: request.caller,
        registry,
        store: (items) => Promise.allSettled(items.map((item) => submissions.submit(item))),
        trace: traceContextFromHeaders(request.headers),
      });
      if (verdict === undefined) throw new Error("a submission was not judged");
      if ("problem" in verdict) return sendProblem(reply, verdict.problem);
      if (verdict.status === 201) reply.header("location", `/jobs/${verdict.job.job_id}`);
      return reply.code(verdict.status).send(verdict.job);
    },
  );

  app.get(
    "/jobs/:job_id",
    {
      schema: {
        summary: "Get a job",
        tags: ["jobs"],
        security,
        params: JobIdParams,
        response: { 200: jsonResponse("The job", Job), ...problemResponses(400, ...auth, 404, 503) },
      },
    },
    async (request, reply) => {
      // On the primary, like the request_id lookup below: the caller may have just submitted it (reads.ts).
      const job = await jobs.get(db, request.params.job_id);
      // Another client's job is indistinguishable from a missing one.
      if (job === null || !visibleTo(request.caller, job)) {
        return sendProblem(reply, problem("not-found", `no job ${request.params.job_id}`));
      }
      return reply.code(200).send(job);
    },
  );

  app.get(
    "/jobs",
    {
      schema: {
        summary: "Find a job by request_id, or list jobs newest first",
        description:
          "With request_id: the one job for (client_id, request_id), or 404. Without: a page of jobs, newest first, " +
          "narrowed by status and use_case; pass next_cursor back as cursor for the next page (null on the last page). " +
          "A client key sees only its own client's jobs (client_id defaults to, and must be, the key's client). " +
          "An admin key (IX_ADMIN_KEYS), or any caller of an API without keys, sees every client's: client_id narrows " +
          "the list to one client, and is required with request_id.",
        tags: ["jobs"],
        security,
        querystring: JobsQuery,
        response: {
          200: jsonResponse("A Job when request_id is given, else a JobList page", z.union([Job, JobList])),
          ...problemResponses(400, ...auth, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const query = request.query;
      const own = clientScope(request.caller);
      if (own !== undefined && query.client_id !== undefined && query.client_id !== own) {
        return sendProblem(reply, problem("not-found", `no jobs of client "${query.client_id}" are visible to this key`));
      }
      const clientId = own ?? query.client_id;

      if (query.request_id !== undefined) {
        if (clientId === undefined) {
          return sendProblem(
            reply,
            problem("validation", "the query string has 1 invalid field(s)", {
              errors: [{ path: "client_id", message: "required with request_id: a request_id names a job only within its client" }],
            }),
          );
        }
        const job = await jobs.getByCorrelation(db, { clientId, requestId: query.request_id });
        if (job === null) {
          return sendProblem(reply, problem("not-found", `no job with request_id "${query.request_id}" for client "${clientId}"`));
        }
        return reply.code(200).send(job);
      }

      // A bad cursor throws InvalidCursorError, which the error handler answers 400.
      // Read from the replica when one is configured (reads.ts): a page may miss the last moments' jobs.
      const page = await reads.run("job-list", (replica) =>
        jobs.listJobs(replica, {
          ...(clientId === undefined ? {} : { clientId }),
          ...(query.use_case === undefined ? {} : { useCase: query.use_case }),
          limit: query.limit,
          ...(query.status === undefined ? {} : { status: query.status }),
          ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
        }),
      );
      return reply.code(200).send({ items: page.items, next_cursor: page.nextCursor });
    },
  );
};
