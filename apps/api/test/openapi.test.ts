import { compileErrors, dereference, validate } from "@readme/openapi-parser";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { OpenAPIV3_1 } from "openapi-types";
import { describe, expect } from "vitest";
import { apiConfig, buildApp, type ApiApp } from "../src/index.ts";
import { KEY_A, KEY_B, KEYS, appFor, asJob, bearer, body } from "./fixtures.ts";

type Injected = Awaited<ReturnType<ApiApp["inject"]>>;

async function documentOf(app: ApiApp): Promise<OpenAPIV3_1.Document> {
  const response = await app.inject({ method: "GET", url: "/openapi.json" });
  expect(response.statusCode).toBe(200);
  return response.json() as OpenAPIV3_1.Document;
}

describe("/openapi.json", () => {
  test("is a valid OpenAPI 3.1 document, with and without keys", async ({ database: { db } }) => {
    for (const apiKeys of [[], KEYS]) {
      const app = await appFor(db, { apiKeys });
      try {
        const document = await documentOf(app);
        expect(document.openapi).toBe("3.1.0");
        const result = await validate(structuredClone(document));
        expect(result.valid, result.valid ? "" : compileErrors(result)).toBe(true);
        expect(Object.keys(document.paths ?? {}).sort()).toEqual([
          "/healthz",
          "/jobs",
          "/jobs/batch",
          "/jobs/{job_id}",
          "/jobs/{job_id}/cancel",
          "/jobs/{job_id}/retry",
          "/metrics",
          "/readyz",
        ]);
        expect(document.components?.schemas).toHaveProperty("Job");
        expect(document.components?.schemas).toHaveProperty("Problem");
        // A batch documents its items as the submission POST /jobs takes.
        // (Request bodies are the schemas' input side, named …Input where it differs: options may be left out.)
        const batchBody = document.paths?.["/jobs/batch"]?.post?.requestBody as OpenAPIV3_1.RequestBodyObject | undefined;
        expect(batchBody?.content["application/json"]?.schema).toEqual({ $ref: "#/components/schemas/SubmissionBatchInput" });
        expect(document.components?.schemas?.SubmissionBatchInput).toMatchObject({
          properties: { jobs: { items: { $ref: "#/components/schemas/SubmissionInput" }, minItems: 1, maxItems: 1000 } },
        });
        expect(Boolean(document.components?.securitySchemes?.bearer)).toBe(apiKeys.length > 0);
      } finally {
        await app.close();
      }
    }
  });

  test("/docs serves the rendered documentation", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const page = await app.inject({ method: "GET", url: "/docs/" });
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-type"]).toMatch(/^text\/html/);
      expect(page.body).toContain("swagger");
    } finally {
      await app.close();
    }
  });

  test("every documented response is what the route returns: status, media type and body schema", async ({
    database,
  }) => {
    const { db } = database;
    const config = apiConfig({ apiKeys: KEYS, bodyLimitBytes: 4_096, batchBodyLimitBytes: 16_384 });
    const app = await appFor(db, config);
    // A second app whose only connection is held: every database call times out into a 503.
    const starved = database.connect({ max: 1, connectionTimeoutMillis: 200 });
    const down = await buildApp({ db: starved, config });
    const held = await starved.$client.connect();
    try {
      const document = (await dereference(structuredClone(await documentOf(app)))) as OpenAPIV3_1.Document;
      const a = bearer(KEY_A);
      const sent = body();
      const job = asJob(await app.inject({ method: "POST", url: "/jobs", headers: a, payload: sent }));
      const other = asJob(
        await app.inject({ method: "POST", url: "/jobs", headers: bearer(KEY_B), payload: body({ ix_client_id: "client-b" }) }),
      );
      const post = (payload: unknown, headers: Record<string, string> = a, target = app) =>
        target.inject({ method: "POST", url: "/jobs", headers, payload: payload as object });
      const get = (url: string, headers: Record<string, string> = a, target = app) =>
        target.inject({ method: "GET", url, headers });
      const batch = (payload: unknown, headers: Record<string, string> = a, target = app) =>
        target.inject({ method: "POST", url: "/jobs/batch", headers, payload: payload as object });
      const control = (url: string, headers: Record<string, string> = a, target = app) =>
        target.inject({ method: "POST", url, headers });
      // Client A's jobs in the states the job-control answers need.
      const ofA = (status: "pending" | "running" | "error" | "done") =>
        insertJob(db, { status, request: sampleRequest({ ix_client_id: "client-a", request_id: `control-${status}` }) });
      const [pendingJob, runningJob, errorJob, doneJob] = [await ofA("pending"), await ofA("running"), await ofA("error"), await ofA("done")];

      const scenarios: Record<string, () => Promise<Injected>> = {
        "get /healthz 200": () => get("/healthz", {}),
        "get /readyz 200": () => get("/readyz", {}),
        "get /readyz 503": () => get("/readyz", {}, down),
        "get /metrics 200": () => get("/metrics", {}),
        "post /jobs 201": () => post(body()),
        "post /jobs 200": () => post(sent),
        "post /jobs 400": () => post({ ...sent, use_case: 7 }),
        "post /jobs 401": () => post(sent, {}),
        "post /jobs 403": () => post(body({ ix_client_id: "client-b" })),
        "post /jobs 409": () => post({ ...sent, context: { texts: ["changed"] } }),
        "post /jobs 413": () => post(body({ context: { texts: ["x".repeat(5_000)] } })),
        "post /jobs 415": () =>
          app.inject({ method: "POST", url: "/jobs", headers: { ...a, "content-type": "text/plain" }, payload: "hi" }),
        "post /jobs 422": () => post(body({ use_case: "no_such_case" })),
        "post /jobs 503": () => post(body(), a, down),
        // Every kind of item result: 201, 200, 400, 403, 409, 413, 422.
        "post /jobs/batch 200": () =>
          batch({
            jobs: [
              body(),
              sent,
              { ...sent, use_case: 7 },
              body({ ix_client_id: "client-b" }),
              { ...sent, context: { texts: ["changed"] } },
              body({ context: { texts: ["x".repeat(5_000)] } }),
              body({ use_case: "no_such_case" }),
            ],
          }),
        "post /jobs/batch 400": () => batch({ jobs: [] }),
        "post /jobs/batch 401": () => batch({ jobs: [body()] }, {}),
        "post /jobs/batch 413": () => batch({ jobs: Array.from({ length: 8 }, () => body({ context: { texts: ["x".repeat(3_000)] } })) }),
        "post /jobs/batch 415": () =>
          app.inject({ method: "POST", url: "/jobs/batch", headers: { ...a, "content-type": "text/plain" }, payload: "hi" }),
        "post /jobs/batch 503": () => batch({ jobs: [body()] }, a, down),
        "get /jobs 200": () => get("/jobs?limit=1"),
        "get /jobs 400": () => get("/jobs?limit=0"),
        "get /jobs 401": () => get("/jobs", {}),
        "get /jobs 404": () => get(`/jobs?client_id=client-b&request_id=${other.request_id}`),
        "get /jobs 503": () => get("/jobs", a, down),
        "get /jobs/{job_id} 200": () => get(`/jobs/${job.job_id}`),
        "get /jobs/{job_id} 400": () => get("/jobs/nope"),
        "get /jobs/{job_id} 401": () => get(`/jobs/${job.job_id}`, {}),
        "get /jobs/{job_id} 404": () => get(`/jobs/${other.job_id}`),
        "get /jobs/{job_id} 503": () => get(`/jobs/${job.job_id}`, a, down),
        "post /jobs/{job_id}/cancel 200": () => control(`/jobs/${pendingJob.job_id}/cancel`),
        "post /jobs/{job_id}/cancel 202": () => control(`/jobs/${runningJob.job_id}/cancel`),
        "post /jobs/{job_id}/cancel 400": () => control("/jobs/nope/cancel"),
        "post /jobs/{job_id}/cancel 401": () => control(`/jobs/${runningJob.job_id}/cancel`, {}),
        "post /jobs/{job_id}/cancel 404": () => control(`/jobs/${other.job_id}/cancel`),
        "post /jobs/{job_id}/cancel 409": () => control(`/jobs/${doneJob.job_id}/cancel`),
        "post /jobs/{job_id}/cancel 503": () => control(`/jobs/${runningJob.job_id}/cancel`, a, down),
        "post /jobs/{job_id}/retry 200": () => control(`/jobs/${errorJob.job_id}/retry`),
        "post /jobs/{job_id}/retry 400": () => control("/jobs/nope/retry"),
        "post /jobs/{job_id}/retry 401": () => control(`/jobs/${errorJob.job_id}/retry`, {}),
        "post /jobs/{job_id}/retry 404": () => control(`/jobs/${other.job_id}/retry`),
        "post /jobs/{job_id}/retry 409": () => control(`/jobs/${doneJob.job_id}/retry`),
        "post /jobs/{job_id}/retry 503": () => control(`/jobs/${errorJob.job_id}/retry`, a, down),
      };

      const documented: Array<{ key: string; mediaType: string; schema: object }> = [];
      for (const [path, item] of Object.entries(document.paths ?? {})) {
        for (const method of ["get", "post", "put", "patch", "delete"] as const) {
          const operation = item?.[method];
          if (!operation) continue;
          for (const [status, response] of Object.entries(operation.responses ?? {})) {
            const content = Object.entries((response as OpenAPIV3_1.ResponseObject).content ?? {});
            expect(content, `${method} ${path} ${status} documents one media type`).toHaveLength(1);
            const [mediaType, media] = content[0] ?? ["", {}];
            documented.push({ key: `${method} ${path} ${status}`, mediaType, schema: media.schema as object });
          }
        }
      }
      // Nothing documented that no scenario exercises, no scenario for an undocumented answer.
      expect(documented.map((d) => d.key).sort()).toEqual(Object.keys(scenarios).sort());

      const ajv = new Ajv2020({ strict: false, allErrors: true });
      addFormats.default(ajv);
      for (const { key, mediaType, schema } of documented) {
        const response = await scenarios[key]?.();
        expect(response, key).toBeDefined();
        if (!response) continue;
        const status = Number(key.split(" ").at(-1));
        expect(response.statusCode, `${key}: ${response.body.slice(0, 300)}`).toBe(status);
        expect(String(response.headers["content-type"]).split(";")[0], key).toBe(mediaType);
        const check = ajv.compile(schema);
        // Prometheus text is a string; every other answer is JSON.
        const payload = mediaType === "text/plain" ? response.body : response.json();
        expect(check(payload), `${key}: ${ajv.errorsText(check.errors)}`).toBe(true);
      }
    } finally {
      held.release();
      await down.close();
      await app.close();
    }
  });
});
