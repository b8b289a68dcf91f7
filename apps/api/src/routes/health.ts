import { migrationStatus, type Database } from "@ix/store";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { problem, sendProblem } from "../problems.ts";
import { Health, Readiness } from "../schemas.ts";
import { jsonResponse, problemResponses } from "./responses.ts";

export interface HealthRoutesOptions {
  db: Database;
  retryAfterSeconds: number;
}

export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, { db, retryAfterSeconds }) => {
  app.get(
    "/healthz",
    {
      schema: {
        summary: "Liveness: the process is up (touches no database)",
        tags: ["operations"],
        response: { 200: jsonResponse("The process is serving", Health) },
      },
    },
    async (_request, reply) => reply.code(200).send({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        summary: "Readiness: the database answers and its schema is current",
        tags: ["operations"],
        response: {
          200: jsonResponse("Ready to serve jobs", Readiness),
          ...problemResponses(503),
        },
      },
    },
    async (_request, reply) => {
      // `ix api` does not migrate on its own: a schema behind (or ahead of) the code is not ready.
      const status = await migrationStatus(db);
      if (!status.current) {
        const parts = [
          status.pending.length > 0 ? `pending: ${status.pending.join(", ")} (run ix migrate up)` : "",
          status.modified.length > 0 ? `modified after applying: ${status.modified.join(", ")}` : "",
          status.unknown.length > 0 ? `unknown to this version: ${status.unknown.join(", ")}` : "",
        ].filter((part) => part.length > 0);
        reply.header("retry-after", String(retryAfterSeconds));
        return sendProblem(reply, problem("unavailable", `database schema is not current; ${parts.join("; ")}`));
      }
      return reply.code(200).send({ status: "ready" as const, migrations: { applied: status.applied } });
    },
  );
};
