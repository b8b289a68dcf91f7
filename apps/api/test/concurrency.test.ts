import { Job } from "@ix/contracts";
import { test } from "@ix/testing";
import { describe, expect } from "vitest";
import { appFor, body, jobCount } from "./fixtures";

async function post(base: string, payload: string): Promise<{ status: number; location: string | null; job: Job }> {
  const response = await fetch(`${base}/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: payload });
  return { status: response.status, location: response.headers.get("location"), job: Job.parse(await response.json()) };
}

describe("concurrent submissions over real HTTP", () => {
  test("200 distinct POSTs at once: 200 jobs, each answered 201 with its own job", async ({ database: { db } }) => {
    const app = await appFor(db, { port: 0 });
    try {
      const base = await app.listen({ host: "127.0.0.1", port: 0 });
      const bodies = Array.from({ length: 200 }, (_, i) => body({ callback_url: `https://hooks.example/${i}` }));
      const answers = await Promise.all(bodies.map((b) => post(base, JSON.stringify(b))));
      answers.forEach((answer, i) => {
        expect(answer.status).toBe(201);
        expect(answer.location).toBe(`/jobs/${answer.job.job_id}`);
        // Each request got its own job back, not a neighbour's from the same batch.
        expect(answer.job.request_id).toBe(bodies[i]?.request_id);
        expect(answer.job.callback_url).toBe(`https://hooks.example/${i}`);
      });
      expect(new Set(answers.map((a) => a.job.job_id)).size).toBe(200);
      expect(await jobCount(db)).toBe(200);
      for (const answer of answers.slice(0, 20)) {
        const stored = await fetch(`${base}/jobs/${answer.job.job_id}`);
        expect(Job.parse(await stored.json())).toEqual(answer.job);
      }
    } finally {
      await app.close();
    }
  });

  test("50 identical POSTs at once make one job: 201 once, 200 for the rest, one job_id", async ({ database: { db } }) => {
    const app = await appFor(db, { port: 0 });
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
    const app = await appFor(db, { port: 0 });
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
