import { ConfigError } from "@ix/contracts";
import { jobs } from "@ix/store";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { describe, expect, it } from "vitest";
import { parseApiEnv } from "../src/index.ts";
import { KEY_A, KEYS, appFor, asJob, bearer, body, expectProblem } from "./fixtures.ts";

// Operators: an IX_ADMIN_KEYS key reads and acts on every client's jobs through the same routes
// a client uses on its own; client keys keep their own jobs only.

const ADMIN_KEY = "key-for-the-operator-0123456789";
const ADMINS = [{ clientId: "ops", key: ADMIN_KEY }];
const config = { apiKeys: KEYS, adminKeys: ADMINS };
const ofClient = (clientId: string, requestId: string) => sampleRequest({ ix_client_id: clientId, request_id: requestId });

describe("IX_ADMIN_KEYS", () => {
  it("parses name:key pairs like IX_API_KEYS, and refuses a key that is in both lists without echoing it", () => {
    expect(parseApiEnv({ IX_ADMIN_KEYS: `ops:${ADMIN_KEY}` }).IX_ADMIN_KEYS).toEqual(ADMINS);
    const attempt = () => parseApiEnv({ IX_API_KEYS: `client-a:${KEY_A}`, IX_ADMIN_KEYS: `ops:${ADMIN_KEY},ops2:${KEY_A},bad` });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const problems = (error as ConfigError).problems;
      expect(problems).toEqual([{ variable: "IX_ADMIN_KEYS", message: "pair 3 is not name:key" }]);
    }
    try {
      parseApiEnv({ IX_API_KEYS: `client-a:${KEY_A}`, IX_ADMIN_KEYS: `ops:${ADMIN_KEY},ops2:${KEY_A}` });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        { variable: "IX_ADMIN_KEYS", message: "pair 2: the key is also in IX_API_KEYS; an operator key must be its own" },
      ]);
      expect((error as Error).message).not.toContain(KEY_A);
    }
  });
});

describe("an admin key on the job routes", () => {
  test("reads any client's job by id and by request_id, and lists every client's or one client's", async ({ database: { db } }) => {
    const a = await insertJob(db, { request: ofClient("client-a", "r-1"), status: "error" });
    const b = await insertJob(db, { request: ofClient("client-b", "r-1") });
    const app = await appFor(db, config);
    try {
      const admin = bearer(ADMIN_KEY);
      expect(asJob(await app.inject({ method: "GET", url: `/jobs/${b.job_id}`, headers: admin })).job_id).toBe(b.job_id);
      const byRequest = await app.inject({ method: "GET", url: "/jobs?client_id=client-b&request_id=r-1", headers: admin });
      expect(asJob(byRequest).job_id).toBe(b.job_id);
      expectProblem(await app.inject({ method: "GET", url: "/jobs?request_id=r-1", headers: admin }), 400, "validation");

      const all = (await app.inject({ method: "GET", url: "/jobs", headers: admin })).json() as { items: Array<{ job_id: string }> };
      expect(all.items.map((j) => j.job_id).sort()).toEqual([a.job_id, b.job_id].sort());
      const onlyB = (await app.inject({ method: "GET", url: "/jobs?client_id=client-b", headers: admin })).json() as { items: Array<{ job_id: string }> };
      expect(onlyB.items.map((j) => j.job_id)).toEqual([b.job_id]);
      const failed = (await app.inject({ method: "GET", url: "/jobs?status=error", headers: admin })).json() as { items: Array<{ job_id: string }> };
      expect(failed.items.map((j) => j.job_id)).toEqual([a.job_id]);
      const byUseCase = await app.inject({ method: "GET", url: "/jobs?use_case=ocr", headers: admin });
      expect(byUseCase.json()).toEqual({ items: [], next_cursor: null });
    } finally {
      await app.close();
    }
  });

  test("cancels and retries any client's job, the cancel said to be an operator's", async ({ database: { db } }) => {
    const pending = await insertJob(db, { request: ofClient("client-b", "p-1") });
    const failed = await insertJob(db, { request: ofClient("client-a", "f-1"), status: "error" });
    const app = await appFor(db, config);
    try {
      const admin = bearer(ADMIN_KEY);
      const cancelled = asJob(await app.inject({ method: "POST", url: `/jobs/${pending.job_id}/cancel`, headers: admin }));
      expect(cancelled).toMatchObject({ status: "cancelled", response: { error: "cancelled by an operator before it ran" } });
      const retried = await app.inject({ method: "POST", url: `/jobs/${failed.job_id}/retry`, headers: admin });
      expect(asJob(retried).status).toBe("pending");
      expectProblem(await app.inject({ method: "POST", url: `/jobs/${failed.job_id}/retry`, headers: admin }), 409, "job-state-conflict");
    } finally {
      await app.close();
    }
  });

  test("client keys stay on their own jobs beside an admin key", async ({ database: { db } }) => {
    const b = await insertJob(db, { request: ofClient("client-b", "r-2") });
    const app = await appFor(db, config);
    try {
      const clientA = bearer(KEY_A);
      expectProblem(await app.inject({ method: "GET", url: `/jobs/${b.job_id}`, headers: clientA }), 404, "not-found");
      expectProblem(await app.inject({ method: "GET", url: "/jobs?client_id=client-b", headers: clientA }), 404, "not-found");
      expectProblem(await app.inject({ method: "POST", url: `/jobs/${b.job_id}/cancel`, headers: clientA }), 404, "not-found");
      const own = (await app.inject({ method: "GET", url: "/jobs", headers: clientA })).json();
      expect(own).toEqual({ items: [], next_cursor: null });
      expect((await jobs.get(db, b.job_id))!.status).toBe("pending");
      // A key that is nobody's is still a 401.
      expectProblem(await app.inject({ method: "GET", url: "/jobs", headers: bearer("x".repeat(30)) }), 401, "unauthorized");
    } finally {
      await app.close();
    }
  });

  test("admin keys alone turn auth on; the operator may submit for any client", async ({ database: { db } }) => {
    const app = await appFor(db, { adminKeys: ADMINS });
    try {
      expectProblem(await app.inject({ method: "GET", url: "/jobs" }), 401, "unauthorized");
      const submitted = await app.inject({ method: "POST", url: "/jobs", payload: body({ ix_client_id: "any-svc" }), headers: bearer(ADMIN_KEY) });
      expect(submitted.statusCode).toBe(201);
    } finally {
      await app.close();
    }
  });

  test("/openapi.json says what each kind of key may do", async ({ database: { db } }) => {
    const app = await appFor(db, config);
    try {
      const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json() as {
        components: { securitySchemes: { bearer: { description: string } } };
        paths: Record<string, { get?: { description: string }; post?: { description: string } }>;
      };
      expect(doc.components.securitySchemes.bearer.description).toContain("IX_ADMIN_KEYS");
      expect(doc.paths["/jobs"]!.get!.description).toContain("An admin key (IX_ADMIN_KEYS)");
      expect(doc.paths["/jobs/{job_id}/retry"]!.post!.description).toContain("an admin key on every client's");
    } finally {
      await app.close();
    }
  });
});
