import { Job } from "@ix/contracts";
import { test } from "@ix/store/testing";
import { describe, expect } from "vitest";
import { apiConfig, buildApp } from "../src";
import { body, jobCount } from "./fixtures";

describe("concurrent submissions over real HTTP", () => {
  test("50 identical POSTs at once make one job: 201 once, 200 for the rest, one job_id", async ({ database: { db } }) => {
    const app = await buildApp({ db, config: apiConfig({ port: 0 }) });
    try {
      const base = await app.listen({ host: "127.0.0.1", port: 0 });
      const payload = JSON.stringify(body({ callback_url: "https://hooks.example/ix" }));
      const answers = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const response = await fetch(`${base}/jobs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: payload,
          });
          return { status: response.status, job: Job.parse(await response.json()) };
        }),
      );
      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      expect(statuses.filter((s) => s === 200)).toHaveLength(49);
      expect(new Set(answers.map((a) => a.job.job_id)).size).toBe(1);
      expect(new Set(answers.map((a) => a.job.ix_id)).size).toBe(1);
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("50 POSTs sharing a request_id but differing in request: one job, the others 409 naming it", async ({
    database: { db },
  }) => {
    const app = await buildApp({ db, config: apiConfig({ port: 0 }) });
    try {
      const base = await app.listen({ host: "127.0.0.1", port: 0 });
      const requestId = `race-${Date.now()}`;
      const answers = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const response = await fetch(`${base}/jobs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body({ request_id: requestId, context: { texts: [`variant ${i}`] } })),
          });
          return { status: response.status, json: (await response.json()) as { job_id: string } };
        }),
      );
      const winner = answers.find((a) => a.status === 201);
      expect(winner).toBeDefined();
      expect(answers.filter((a) => a.status === 409)).toHaveLength(49);
      expect(new Set(answers.map((a) => a.json.job_id))).toEqual(new Set([winner?.json.job_id]));
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });
});
