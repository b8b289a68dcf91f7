import { Job, JobList } from "@ix/contracts";
import { jobs } from "@ix/store";
import { registerTestWorker, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { KEY_A, KEY_B, KEYS, appFor, asJob, bearer, body, expectProblem, jobCount } from "./fixtures.ts";

describe("POST /jobs", () => {
  test("201 with Location for a new pending job, ix_id assigned by ix", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body({ ix_id: "ffffffffffffffff", callback_url: "https://hooks.example/ix" });
      const response = await app.inject({ method: "POST", url: "/jobs", payload: sent });
      expect(response.statusCode).toBe(201);
      const job = Job.parse(response.json());
      expect(response.headers.location).toBe(`/jobs/${job.job_id}`);
      expect(job).toMatchObject({ status: "pending", client_id: "client-a", request_id: sent.request_id, attempts: 0 });
      expect(job.callback_url).toBe("https://hooks.example/ix");
      expect(job.ix_id).not.toBe("ffffffffffffffff");
      expect(job.request.options).toEqual({});
      expect(await jobs.get(db, job.job_id)).toEqual(job);
    } finally {
      await app.close();
    }
  });

  test("resubmitting the same request answers 200 with the same job, whatever the key order or ix_id", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const sent = body({ options: { fields: { total: "\\d+" }, n: 1 } });
      const first = await app.inject({ method: "POST", url: "/jobs", payload: sent });
      expect(first.statusCode).toBe(201);
      const reordered = Object.fromEntries(Object.entries({ ...sent, options: { n: 1.0, fields: { total: "\\d+" } } }).reverse());
      const again = await app.inject({ method: "POST", url: "/jobs", payload: { ...reordered, ix_id: "0123456789abcdef" } });
      expect(again.statusCode).toBe(200);
      expect(again.headers.location).toBeUndefined();
      expect(asJob(again)).toEqual(asJob(first));
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("omitted options and explicit {} are the same request", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body();
      expect((await app.inject({ method: "POST", url: "/jobs", payload: sent })).statusCode).toBe(201);
      expect((await app.inject({ method: "POST", url: "/jobs", payload: { ...sent, options: {} } })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  test("a different callback_url alone is not a conflict; the first one stays", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body({ callback_url: "https://a.example/hook" });
      const first = asJob(await app.inject({ method: "POST", url: "/jobs", payload: sent }));
      const again = await app.inject({ method: "POST", url: "/jobs", payload: { ...sent, callback_url: "https://b.example/hook" } });
      expect(again.statusCode).toBe(200);
      expect(asJob(again).callback_url).toBe("https://a.example/hook");
      expect(asJob(again).job_id).toBe(first.job_id);
    } finally {
      await app.close();
    }
  });

  test("the same request_id with a different request is 409 naming the existing job, and changes nothing", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    await registerTestWorker(db, ["other_case"]);
    try {
      const sent = body();
      const first = asJob(await app.inject({ method: "POST", url: "/jobs", payload: sent }));
      for (const changed of [
        { ...sent, context: { texts: ["another text"] } },
        { ...sent, use_case: "other_case" },
        { ...sent, options: { fields: {} } },
      ]) {
        const response = await app.inject({ method: "POST", url: "/jobs", payload: changed });
        const problem = expectProblem(response, 409, "request-conflict");
        expect(problem.job_id).toBe(first.job_id);
        expect(problem.detail).toContain(first.job_id);
      }
      expect(await jobs.get(db, first.job_id)).toEqual(first);
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("a resubmission after the job ran still answers 200 with its current state", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body();
      await app.inject({ method: "POST", url: "/jobs", payload: sent });
      const [claimed] = await jobs.claimPending(db, { limit: 1 });
      const again = await app.inject({ method: "POST", url: "/jobs", payload: sent });
      expect(again.statusCode).toBe(200);
      expect(asJob(again)).toEqual(claimed);
      expect(asJob(again).status).toBe("running");
    } finally {
      await app.close();
    }
  });

  test("callback_url must be http(s) and at most 2,048 characters", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const longest = `https://hooks.example/${"a".repeat(2048 - "https://hooks.example/".length)}`;
      expect((await app.inject({ method: "POST", url: "/jobs", payload: body({ callback_url: longest }) })).statusCode).toBe(201);
      for (const callbackUrl of [`${longest}a`, "ftp://hooks.example/x", "javascript:alert(1)", "not a url"]) {
        const response = await app.inject({ method: "POST", url: "/jobs", payload: body({ callback_url: callbackUrl }) });
        const problem = expectProblem(response, 400, "validation");
        expect(problem.errors?.map((e) => e.path)).toEqual(["callback_url"]);
      }
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe("GET /jobs/{job_id}", () => {
  test("200 with the job; 404 problem for an unknown id; 400 for a malformed one", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const created = asJob(await app.inject({ method: "POST", url: "/jobs", payload: body() }));
      const response = await app.inject({ method: "GET", url: `/jobs/${created.job_id}` });
      expect(response.statusCode).toBe(200);
      expect(Job.parse(response.json())).toEqual(created);
      expectProblem(await app.inject({ method: "GET", url: "/jobs/00000000-0000-4000-8000-000000000000" }), 404, "not-found");
      const malformed = expectProblem(await app.inject({ method: "GET", url: "/jobs/not-a-uuid" }), 400, "validation");
      expect(malformed.errors?.map((e) => e.path)).toEqual(["job_id"]);
    } finally {
      await app.close();
    }
  });
});

describe("GET /jobs?client_id=&request_id= (correlation)", () => {
  test("finds the job by the caller's request_id, 404 when there is none", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const sent = body({ request_id: "order 17 / ünïcødé ✓" });
      const created = asJob(await app.inject({ method: "POST", url: "/jobs", payload: sent }));
      const found = await app.inject({
        method: "GET",
        url: "/jobs",
        query: { client_id: "client-a", request_id: "order 17 / ünïcødé ✓" },
      });
      expect(found.statusCode).toBe(200);
      expect(Job.parse(found.json())).toEqual(created);
      expectProblem(
        await app.inject({ method: "GET", url: "/jobs", query: { client_id: "client-a", request_id: "nope" } }),
        404,
        "not-found",
      );
      // Same request_id, other client: another namespace.
      expectProblem(
        await app.inject({ method: "GET", url: "/jobs", query: { client_id: "client-b", request_id: sent.request_id as string } }),
        404,
        "not-found",
      );
    } finally {
      await app.close();
    }
  });

  test("request_id cannot be combined with status or cursor", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const response = await app.inject({
        method: "GET",
        url: "/jobs",
        query: { client_id: "client-a", request_id: "r", status: "done", cursor: "x" },
      });
      expect(expectProblem(response, 400, "validation").errors?.map((e) => e.path).sort()).toEqual(["cursor", "status"]);
    } finally {
      await app.close();
    }
  });
});

describe("GET /jobs (list)", () => {
  test("pages through a client's jobs newest first with an opaque cursor, filtered by status", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        created.push(asJob(await app.inject({ method: "POST", url: "/jobs", payload: body() })).job_id);
      }
      await app.inject({ method: "POST", url: "/jobs", payload: body({ ix_client_id: "client-b" }) });
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: Record<string, string> = { client_id: "client-a", limit: "3", ...(cursor ? { cursor } : {}) };
        const response = await app.inject({ method: "GET", url: "/jobs", query });
        expect(response.statusCode).toBe(200);
        const page = JobList.parse(response.json());
        expect(page.items.length).toBeLessThanOrEqual(3);
        seen.push(...page.items.map((job) => job.job_id));
        cursor = page.next_cursor;
        pages += 1;
      } while (cursor !== null && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual([...created].reverse());

      const [claimed] = await jobs.claimPending(db, { limit: 1 });
      const running = JobList.parse(
        (await app.inject({ method: "GET", url: "/jobs", query: { client_id: "client-a", status: "running" } })).json(),
      );
      expect(running.items.map((job) => job.job_id)).toEqual([claimed?.job_id]);
      expect(running.next_cursor).toBeNull();
    } finally {
      await app.close();
    }
  });

  test("bad limit, status, cursor and unknown parameters are 400 problems naming the parameter", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const list = (query: Record<string, string>) =>
        app.inject({ method: "GET", url: "/jobs", query: { client_id: "client-a", ...query } });
      const bad = expectProblem(await list({ limit: "0", status: "finished", colour: "blue" }), 400, "validation");
      expect(bad.errors?.map((e) => e.path).sort()).toEqual(["colour", "limit", "status"]);
      expectProblem(await list({ limit: "201" }), 400, "validation");
      expectProblem(await list({ cursor: "garbage" }), 400, "invalid-cursor");
      // Decodes as a cursor, but holds an instant PostgreSQL rejects.
      const forged = Buffer.from(JSON.stringify(["99999-01-01T00:00:00Z", "00000000-0000-4000-8000-000000000000"])).toString(
        "base64url",
      );
      expectProblem(await list({ cursor: forged }), 400, "invalid-cursor");
    } finally {
      await app.close();
    }
  });

  test("without keys, client_id is required with request_id (and optional for a listing)", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const problem = expectProblem(await app.inject({ method: "GET", url: "/jobs?request_id=r-1" }), 400, "validation");
      expect(problem.errors).toEqual([
        { path: "client_id", message: "required with request_id: a request_id names a job only within its client" },
      ]);
      expect((await app.inject({ method: "GET", url: "/jobs" })).json()).toEqual({ items: [], next_cursor: null });
    } finally {
      await app.close();
    }
  });
});

describe("auth (IX_API_KEYS)", () => {
  test("missing or unknown key is 401 with WWW-Authenticate, before the body is read", async ({ database: { db } }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      for (const headers of [{}, { authorization: "Bearer nope-nope-nope-nope" }, { authorization: `Basic ${KEY_A}` }]) {
        const post = await app.inject({ method: "POST", url: "/jobs", headers, payload: "{not json" , });
        expectProblem(post, 401, "unauthorized");
        expect(post.headers["www-authenticate"]).toMatch(/^Bearer/);
        expectProblem(await app.inject({ method: "GET", url: "/jobs", headers }), 401, "unauthorized");
        expectProblem(
          await app.inject({ method: "GET", url: "/jobs/00000000-0000-4000-8000-000000000000", headers }),
          401,
          "unauthorized",
        );
      }
      expect(await jobCount(db)).toBe(0);
      // Operations endpoints stay open for probes.
      expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
      expect((await app.inject({ method: "GET", url: "/openapi.json" })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  test("a key may submit only for its own client: another ix_client_id is 403 and stores nothing", async ({
    database: { db },
  }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      const response = await app.inject({
        method: "POST",
        url: "/jobs",
        headers: bearer(KEY_A),
        payload: body({ ix_client_id: "client-b" }),
      });
      expect(expectProblem(response, 403, "forbidden").detail).toContain("client-a");
      expect(await jobCount(db)).toBe(0);
      const own = await app.inject({ method: "POST", url: "/jobs", headers: bearer(KEY_A), payload: body() });
      expect(own.statusCode).toBe(201);
    } finally {
      await app.close();
    }
  });

  test("tenant isolation: a client sees only its own jobs, by id, by correlation and in lists", async ({
    database: { db },
  }) => {
    const app = await appFor(db, { apiKeys: KEYS });
    try {
      const submit = async (key: string, clientId: string, requestId: string) =>
        asJob(
          await app.inject({
            method: "POST",
            url: "/jobs",
            headers: bearer(key),
            payload: body({ ix_client_id: clientId, request_id: requestId }),
          }),
        );
      // The same request_id in both tenants: two jobs.
      const a = await submit(KEY_A, "client-a", "shared-id");
      const b = await submit(KEY_B, "client-b", "shared-id");
      expect(a.job_id).not.toBe(b.job_id);

      const get = (key: string, url: string, query?: Record<string, string>) =>
        app.inject({ method: "GET", url, headers: bearer(key), ...(query ? { query } : {}) });
      expect(asJob(await get(KEY_A, `/jobs/${a.job_id}`)).job_id).toBe(a.job_id);
      expectProblem(await get(KEY_A, `/jobs/${b.job_id}`), 404, "not-found");
      expectProblem(await get(KEY_B, `/jobs/${a.job_id}`), 404, "not-found");

      // Correlation defaults to the key's client; naming the other client is 404.
      expect(asJob(await get(KEY_B, "/jobs", { request_id: "shared-id" })).job_id).toBe(b.job_id);
      expectProblem(await get(KEY_A, "/jobs", { client_id: "client-b", request_id: "shared-id" }), 404, "not-found");
      expect(asJob(await get(KEY_A, "/jobs", { client_id: "client-a", request_id: "shared-id" })).job_id).toBe(a.job_id);

      const listA = JobList.parse((await get(KEY_A, "/jobs")).json());
      expect(listA.items.map((job) => job.job_id)).toEqual([a.job_id]);
      expectProblem(await get(KEY_A, "/jobs", { client_id: "client-b" }), 404, "not-found");

      // Client A resubmitting B's request_id under its own id cannot reach B's job.
      const resubmit = await app.inject({
        method: "POST",
        url: "/jobs",
        headers: bearer(KEY_A),
        payload: { ...b.request, ix_client_id: "client-b" },
      });
      expectProblem(resubmit, 403, "forbidden");
    } finally {
      await app.close();
    }
  });

  test("without keys every job is visible to every caller", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const job = asJob(await app.inject({ method: "POST", url: "/jobs", payload: body({ ix_client_id: "client-b" }) }));
      expect((await app.inject({ method: "GET", url: `/jobs/${job.job_id}` })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
