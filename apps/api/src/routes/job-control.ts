import { Job } from "@ix/contracts";
import { type Database, jobs } from "@ix/store";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { type Caller, clientScope } from "../auth.ts";
import { problem, sendProblem } from "../problems.ts";
import { JobIdParams } from "../schemas.ts";
import { describedProblemResponses, jsonResponse } from "./responses.ts";

export interface JobControlRoutesOptions {
  db: Database;
  /** Whether the API runs with keys; then every route here needs a bearer key. */
  authenticated: boolean;
}

/** The same tenant rule as a read: a client acts only on its own jobs; an operator, or anyone without keys, on any. */
function scope(caller: Caller): { clientId?: string } {
  const clientId = clientScope(caller);
  return clientId === undefined ? {} : { clientId };
}

/**
 * `POST /jobs/{job_id}/cancel` and `POST /jobs/{job_id}/retry`. Neither takes
 * a body. Another client's job is a 404, as on a read.
 */
export const jobControlRoutes: FastifyPluginAsyncZod<JobControlRoutesOptions> = async (app, { db, authenticated }) => {
  const security = authenticated ? [{ bearer: [] }] : [];
  const auth = authenticated ? [401] : [];

  app.post(
    "/jobs/:job_id/cancel",
    {
      schema: {
        summary: "Cancel a job",
        description:
          "A pending job is cancelled at once (200). A running job gets cancel_requested_at (202): its worker stops the run " +
          "and stores the job cancelled. The cancelled job's response.error says who cancelled it (its client, with a client key; " +
          "an operator, with an admin key or on an API without keys), and its callback is sent like any ending. A job that already ended is a 409. " +
          "A client key acts only on its own client's jobs (another's is a 404); an admin key on every client's.",
        tags: ["jobs"],
        security,
        params: JobIdParams,
        response: {
          200: jsonResponse("The job was pending: it is now cancelled", Job),
          202: jsonResponse("The job is running: the cancel is requested (cancel_requested_at) and its worker stops it", Job),
          ...describedProblemResponses(
            { 409: "The job already ended (done, error or cancelled); `job_id` names it" },
            400,
            ...auth,
            404,
            409,
            503,
          ),
        },
      },
    },
    async (request, reply) => {
      const { job_id: jobId } = request.params;
      const caller = request.caller;
      const result = await jobs.cancel(db, { jobId, ...scope(caller), by: caller.kind === "client" ? "client" : "operator" });
      switch (result.outcome) {
        case "cancelled":
          return reply.code(200).send(result.job);
        case "requested":
          return reply.code(202).send(result.job);
        case "terminal":
          return sendProblem(
            reply,
            problem("job-state-conflict", `job ${jobId} already ended ${result.job.status}: only a pending or running job can be cancelled`, {
              job_id: jobId,
            }),
          );
        case "not_found":
          return sendProblem(reply, problem("not-found", `no job ${jobId}`));
      }
    },
  );

  app.post(
    "/jobs/:job_id/retry",
    {
      schema: {
        summary: "Retry a job that ended error or cancelled",
        description:
          "The job goes back to pending with the same job_id, due now: its errors are kept, the run that ended it counts in " +
          "attempts, and one more run is allowed (a numeric max_attempts is raised by one). Its callback is sent again when it " +
          "ends. Any other status is a 409. A client key acts only on its own client's jobs (another's is a 404); an admin key on every client's.",
        tags: ["jobs"],
        security,
        params: JobIdParams,
        response: {
          200: jsonResponse("The job, pending again", Job),
          ...describedProblemResponses(
            { 409: "The job is pending, running or done: only a job that ended error or cancelled can be retried; `job_id` names it" },
            400,
            ...auth,
            404,
            409,
            503,
          ),
        },
      },
    },
    async (request, reply) => {
      const { job_id: jobId } = request.params;
      const result = await jobs.retry(db, { jobId, ...scope(request.caller) });
      switch (result.outcome) {
        case "retried":
          return reply.code(200).send(result.job);
        case "not_retryable":
          return sendProblem(
            reply,
            problem("job-state-conflict", `job ${jobId} is ${result.job.status}: only a job that ended error or cancelled can be retried`, {
              job_id: jobId,
            }),
          );
        case "not_found":
          return sendProblem(reply, problem("not-found", `no job ${jobId}`));
      }
    },
  );
};
