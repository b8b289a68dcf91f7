import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ApiMetrics } from "../metrics.ts";

export interface MetricsRoutesOptions {
  metrics: ApiMetrics;
}

/**
 * `GET /metrics`: Prometheus text, without a key, like /healthz. It names no
 * job, request or client, only counts per status and use_case; restrict who
 * reaches it at the network (docs/OPERATIONS.md, "Metrics").
 */
export const metricsRoutes: FastifyPluginAsyncZod<MetricsRoutesOptions> = async (app, { metrics }) => {
  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics",
        description:
          "Jobs by status and use_case, the callback backlog, live workers by use_case, and this API's HTTP requests by route " +
          "and status, in the Prometheus text format. Database figures are cached for a few seconds (finished jobs for a minute). " +
          "No key is needed and no series names a job, a request_id or a client. Workers serve their own on IX_WORKER_METRICS_PORT.",
        tags: ["operations"],
        response: {
          200: {
            description: "Prometheus text exposition format 0.0.4",
            content: { "text/plain": { schema: z.string() } },
          },
        },
      },
    },
    async (_request, reply) => {
      const text = await metrics.scrape();
      // Sent as it is: the route's schema documents it, but a string must not be serialized as JSON.
      return reply.code(200).type(metrics.registry.contentType).serializer((payload: unknown) => payload as string).send(text);
    },
  );
};
