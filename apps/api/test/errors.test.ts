import { migrateDown } from "@ix/store";
import { test } from "@ix/testing";
import { describe, expect } from "vitest";
import { appFor, body, expectProblem, jobCount } from "./fixtures";

describe("problem+json for bad requests", () => {
  test("validation lists every bad field with its path, unknown keys by name, and stores nothing", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const response = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: {
          use_case: "Not A Use Case",
          ix_client_id: "",
          request_id: 42,
          context: { texts: ["ok", 7], files: [{ url: "file:///etc/passwd" }] },
          callback_url: "ftp://x.example/",
          surprise: true,
        },
      });
      const problem = expectProblem(response, 400, "validation");
      // One entry per failed check: "" breaks both ix_client_id's length and its pattern.
      expect([...new Set(problem.errors?.map((e) => e.path))].sort()).toEqual([
        "callback_url",
        "context.files.0.url",
        "context.texts.1",
        "ix_client_id",
        "request_id",
        "surprise",
        "use_case",
      ]);
      expect(problem.errors?.find((e) => e.path === "surprise")?.message).toBe("unknown key");
      expect(problem.errors?.every((e) => e.message.length > 0)).toBe(true);

      const empty = expectProblem(
        await app.inject({ method: "POST", url: "/jobs", payload: body({ context: {} }) }),
        400,
        "validation",
      );
      expect(empty.errors).toEqual([{ path: "context", message: "must hold at least one text or file" }]);
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("strings JSONB cannot store (NUL, lone surrogates) are 400 naming the field, not a 500", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const nul = await app.inject({
        method: "POST",
        url: "/jobs",
        payload: body({ context: { texts: ["fine", "a\u0000b"] } }),
      });
      expect(expectProblem(nul, 400, "validation").errors?.map((e) => e.path)).toEqual(["context.texts.1"]);
      const surrogate = await app.inject({
        method: "POST",
        url: "/jobs",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify(body({ options: { "k\ud800": "x", ok: "\ud83d\ude00" } })),
      });
      expect(expectProblem(surrogate, 400, "validation").errors?.map((e) => e.path)).toEqual(["options.k\ud800"]);
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("deep nesting is a 400 naming where, not a stack overflow: 64 levels pass, 65 do not", async ({ database: { db } }) => {
    const app = await appFor(db);
    const nested = (levels: number, leaf: unknown = 1): unknown => {
      let value = leaf;
      for (let i = 0; i < levels; i++) value = [value];
      return value;
    };
    const post = (payload: string) =>
      app.inject({ method: "POST", url: "/jobs", headers: { "content-type": "application/json" }, payload });
    try {
      // The body is level 1 and options level 2, so 62 arrays inside options.a end at level 64.
      expect((await post(JSON.stringify(body({ options: { a: nested(62) } })))).statusCode).toBe(201);
      const tooDeep = expectProblem(await post(JSON.stringify(body({ options: { a: nested(63) } }))), 400, "validation");
      expect(tooDeep.errors).toEqual([
        { path: ["options", "a", ...Array(62).fill("0")].join("."), message: "objects and arrays may nest at most 64 levels deep" },
      ]);
      // The reported case: an 8 KB body nested ~4,000 deep answered 500 (RangeError in a recursive walk).
      const arrays = `{"use_case":"extract_fields","ix_client_id":"client-a","request_id":"deep-1","context":{"texts":["t"]},"options":{"a":${"[".repeat(4_000)}${"]".repeat(4_000)}}}`;
      expect(Buffer.byteLength(arrays)).toBeLessThan(8_300);
      expectProblem(await post(arrays), 400, "validation");
      const objects = `{"use_case":"extract_fields","ix_client_id":"client-a","request_id":"deep-2","context":{"texts":["t"]},"options":${'{"a":'.repeat(1_500)}1${"}".repeat(1_500)}}`;
      expectProblem(await post(objects), 400, "validation");
      // As deep as a 1 MB body allows.
      const deepest = `{"use_case":"extract_fields","ix_client_id":"client-a","request_id":"deep-3","context":{"texts":["t"]},"options":{"a":${"[".repeat(500_000)}${"]".repeat(500_000)}}}`;
      expectProblem(await post(deepest), 400, "validation");
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("a callback_url whose host is a non-public IP literal is a 400 saying why; names wait for the worker's check", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    const allowing = await appFor(db, { callbackAllowedHosts: ["127.0.0.0/8"] });
    try {
      for (const [url, why] of [
        ["http://169.254.169.254/latest/meta-data/", /link-local/],
        ["http://127.0.0.1:9000/hook", /loopback/],
        ["http://2130706433/hook", /loopback/],
        ["https://[::1]/hook", /loopback/],
        ["http://10.0.0.8/hook", /private/],
        ["http://[::ffff:192.168.0.1]/", /IPv4-mapped/],
      ] as const) {
        const response = await app.inject({ method: "POST", url: "/jobs", payload: body({ callback_url: url }) });
        const refused = expectProblem(response, 400, "validation");
        expect(refused.errors).toEqual([{ path: "callback_url", message: expect.stringMatching(why) }]);
        expect(refused.errors?.[0]?.message).toMatch(/allow it with IX_CALLBACK_ALLOWED_HOSTS$/);
      }
      expect(await jobCount(db)).toBe(0);
      for (const url of ["https://hooks.example.com/ix", "https://8.8.8.8/ix", "http://[2606:4700:4700::1111]/ix"]) {
        expect((await app.inject({ method: "POST", url: "/jobs", payload: body({ callback_url: url }) })).statusCode).toBe(201);
      }
      // IX_CALLBACK_ALLOWED_HOSTS lets the API accept what the worker is configured to reach.
      const allowed = await allowing.inject({ method: "POST", url: "/jobs", payload: body({ callback_url: "http://127.0.0.1:9000/hook" }) });
      expect(allowed.statusCode).toBe(201);
      expect(await jobCount(db)).toBe(4);
    } finally {
      await app.close();
      await allowing.close();
    }
  });

  test("malformed or empty JSON is 400 malformed-json", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      for (const payload of ['{"use_case":', "", "nul", '{"__proto__": {"x": 1}}']) {
        const response = await app.inject({
          method: "POST",
          url: "/jobs",
          headers: { "content-type": "application/json" },
          payload,
        });
        expectProblem(response, 400, "malformed-json");
      }
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("a body that is not application/json is 415", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const json = JSON.stringify(body());
      for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/jsonx"]) {
        const response = await app.inject({ method: "POST", url: "/jobs", headers: { "content-type": contentType }, payload: json });
        expect(expectProblem(response, 415, "unsupported-media-type").detail).toContain(contentType);
      }
      // application/json with parameters is still JSON.
      const charset = await app.inject({
        method: "POST",
        url: "/jobs",
        headers: { "content-type": "application/json; charset=utf-8" },
        payload: json,
      });
      expect(charset.statusCode).toBe(201);
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("a body over the configured limit is 413 and stores nothing", async ({ database: { db } }) => {
    const app = await appFor(db, { bodyLimitBytes: 4_096 });
    try {
      const fits = body({ context: { texts: ["x".repeat(3_000)] } });
      const tooBig = body({ context: { texts: ["x".repeat(4_096)] } });
      expect((await app.inject({ method: "POST", url: "/jobs", payload: fits })).statusCode).toBe(201);
      expectProblem(await app.inject({ method: "POST", url: "/jobs", payload: tooBig }), 413, "payload-too-large");
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("unknown routes and methods are 404 problems; a malformed URL is a 400 problem", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      expect(expectProblem(await app.inject({ method: "GET", url: "/nope?x=1" }), 404, "not-found").detail).toBe(
        "no route GET /nope",
      );
      expectProblem(await app.inject({ method: "DELETE", url: "/jobs" }), 404, "not-found");
      expectProblem(await app.inject({ method: "POST", url: "/jobs/x/y", payload: {} }), 404, "not-found");
      // Fastify refuses a malformed URL before routing; it is still a problem.
      expectProblem(await app.inject({ method: "GET", url: "/jobs/%E0%A4%A" }), 400, "bad-request");
    } finally {
      await app.close();
    }
  });
});

describe("operations endpoints", () => {
  test("/healthz is up; /readyz is ready on a migrated database and 503 naming what is pending otherwise", async ({
    database: { db },
  }) => {
    const app = await appFor(db);
    try {
      const health = await app.inject({ method: "GET", url: "/healthz" });
      expect(health.statusCode).toBe(200);
      expect(health.json()).toEqual({ status: "ok" });

      const ready = await app.inject({ method: "GET", url: "/readyz" });
      expect(ready.statusCode).toBe(200);
      const applied = (ready.json() as { migrations: { applied: string[] } }).migrations.applied;
      expect(applied.length).toBeGreaterThan(0);

      const [reverted] = await migrateDown(db);
      const behind = await app.inject({ method: "GET", url: "/readyz" });
      expect(expectProblem(behind, 503, "unavailable").detail).toContain(reverted);
      expect(behind.headers["retry-after"]).toBe("2");
    } finally {
      await app.close();
    }
  });
});

describe("an unavailable database answers 503 with Retry-After, never a hang", () => {
  test("pool exhausted: a request that cannot get a connection within the connect timeout is 503", async ({
    database,
  }) => {
    const db = database.connect({ max: 1, connectionTimeoutMillis: 300 });
    const app = await appFor(db, { retryAfterSeconds: 7 });
    const held = await db.$client.connect();
    try {
      const response = await app.inject({ method: "POST", url: "/jobs", payload: body() });
      expectProblem(response, 503, "unavailable");
      expect(response.headers["retry-after"]).toBe("7");
      const ready = await app.inject({ method: "GET", url: "/readyz" });
      expectProblem(ready, 503, "unavailable");
      held.release();
      expect((await app.inject({ method: "POST", url: "/jobs", payload: body() })).statusCode).toBe(201);
      expect(await jobCount(database.db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("a statement stuck behind a lock is cancelled by statement_timeout and answered 503", async ({ database }) => {
    const db = database.connect({ max: 2, statementTimeoutMillis: 300 });
    const app = await appFor(db);
    const locker = await database.db.$client.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table ix_jobs in access exclusive mode");
      const response = await app.inject({ method: "GET", url: "/jobs/00000000-0000-4000-8000-000000000000" });
      expectProblem(response, 503, "unavailable");
      expect(response.headers["retry-after"]).toBe("2");
      await locker.query("rollback");
      expectProblem(await app.inject({ method: "GET", url: "/jobs/00000000-0000-4000-8000-000000000000" }), 404, "not-found");
    } finally {
      locker.release();
      await app.close();
    }
  });
});
