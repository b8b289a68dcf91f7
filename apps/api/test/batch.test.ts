import { BatchResults, Job, MAX_BATCH_JOBS, type BatchItemResult, type Problem } from "@ix/contracts";
import { jobs, sql } from "@ix/store";
import { registerTestWorker, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { KEY_A, KEYS, USE_CASE, bearer, body, jobCount, listeningApp, postJson, type HttpAnswer } from "./fixtures.ts";

// POST /jobs/batch over real sockets and real PostgreSQL.

// The fixture's app has a worker for USE_CASE; another serves ocr.
const KNOWN = [USE_CASE, "ocr"].sort();

function resultsOf(answer: HttpAnswer): BatchItemResult[] {
  expect(answer.status, JSON.stringify(answer.json).slice(0, 500)).toBe(200);
  return BatchResults.parse(answer.json).results;
}

/** What a client can compare between two answers: the status, the problem's kind and its field errors. */
function outline(status: number, problem?: Problem): { status: number; type?: string; errors?: unknown } {
  return problem === undefined ? { status } : { status, type: problem.type, errors: problem.errors };
}

/**
 * Submissions covering every verdict, their request_ids under `prefix` so two
 * runs in one database do not meet: [what exists before, the submissions].
 */
function scenario(prefix: string): { before: Array<Record<string, unknown>>; items: unknown[] } {
  const id = (name: string) => `${prefix}-${name}`;
  const existing = body({ request_id: id("existing"), priority: 1 });
  const fresh = body({ request_id: id("fresh") });
  return {
    before: [existing],
    items: [
      fresh, // 201
      { ...body({ request_id: id("invalid") }), use_case: 7, surprise: true }, // 400, two fields
      body({ request_id: id("foreign"), ix_client_id: "client-b" }), // 403
      body({ request_id: id("unserved"), use_case: "no_such_case" }), // 422
      { ...fresh }, // 200: the same as the first item
      { ...fresh, context: { texts: ["another text"] } }, // 409: the first item's request_id, another request
      { ...existing }, // 200: the stored job, asked again
      { ...existing, priority: 2 }, // 409: the stored job with another priority
      body({ request_id: id("scheduled"), priority: 5, run_at: "2999-01-01T00:00:00Z", max_attempts: 2 }), // 201
      body({ request_id: id("private-hook"), callback_url: "http://10.0.0.1/hook" }), // 400 callback_url
      ["not", "a", "submission"], // 400
      body({ request_id: id("invalid") }), // 201: the invalid item stored nothing under this request_id
    ],
  };
}

describe("POST /jobs/batch", () => {
  test("answers each item as POST /jobs answers it alone, in input order, storing the valid ones", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApp(db, { apiKeys: KEYS });
    await registerTestWorker(db, ["ocr"]);
    const a = bearer(KEY_A);
    try {
      // Alone: one POST /jobs per item.
      const alone = scenario("alone");
      for (const sent of alone.before) expect((await postJson(base, "/jobs", sent, a)).status).toBe(201);
      const aloneAnswers: Array<ReturnType<typeof outline>> = [];
      for (const item of alone.items) {
        const answer = await postJson(base, "/jobs", item, a);
        aloneAnswers.push(outline(answer.status, answer.status >= 400 ? (answer.json as Problem) : undefined));
      }

      // Batched: the same items in one request.
      const batched = scenario("batch");
      for (const sent of batched.before) expect((await postJson(base, "/jobs", sent, a)).status).toBe(201);
      const before = await jobCount(db);
      const results = resultsOf(await postJson(base, "/jobs/batch", { jobs: batched.items }, a));
      expect(results.map((r) => outline(r.status, "problem" in r ? r.problem : undefined))).toEqual(aloneAnswers);
      expect(results.map((r) => r.status)).toEqual([201, 400, 403, 422, 200, 409, 200, 409, 201, 400, 400, 201]);

      const [fresh, invalid, foreign, unserved, same, conflict, existing, rescheduled, scheduled, hook, notObject, retaken] = results;
      expect(invalid).toMatchObject({ problem: { status: 400, errors: [{ path: "use_case" }, { path: "surprise", message: "unknown key" }] } });
      expect(foreign).toMatchObject({ problem: { type: "https://ix.dev/problems/forbidden", status: 403 } });
      expect(unserved).toMatchObject({ problem: { status: 422, known_use_cases: KNOWN } });
      expect((unserved as { problem: Problem }).problem.detail).toContain('"no_such_case"');
      expect(hook).toMatchObject({ problem: { errors: [{ path: "callback_url" }] } });
      expect(notObject).toMatchObject({ problem: { errors: [{ path: "(root)" }] } });

      // Every job an item names is the stored one; a repeat names its first occurrence's job.
      const jobOf = (r: BatchItemResult | undefined) => (r && "job" in r ? r.job : undefined);
      for (const result of [fresh, same, existing, scheduled, retaken]) {
        const job = Job.parse(jobOf(result));
        expect(await jobs.get(db, job.job_id)).toEqual(job);
      }
      expect(jobOf(same)).toEqual(jobOf(fresh));
      expect((conflict as { problem: Problem }).problem.job_id).toBe(jobOf(fresh)?.job_id);
      expect((rescheduled as { problem: Problem }).problem.job_id).toBe(jobOf(existing)?.job_id);
      expect(jobOf(scheduled)).toMatchObject({ priority: 5, run_at: "2999-01-01T00:00:00.000Z", max_attempts: 2 });
      // Three new jobs; the refused items stored nothing.
      expect(await jobCount(db)).toBe(before + 3);
    } finally {
      await app.close();
    }
  });

  test("a body that is not {jobs: [1 to 1,000 items]} is a 400 for the whole request and stores nothing", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApp(db);
    try {
      const many = Array.from({ length: MAX_BATCH_JOBS + 1 }, () => body());
      for (const [payload, path] of [
        [{ jobs: [] }, "jobs"],
        [{ jobs: many }, "jobs"],
        [[body()], "(root)"],
        [{}, "jobs"],
        [{ jobs: body() }, "jobs"],
        [{ jobs: [body()], extra: 1 }, "extra"],
      ] as const) {
        const answer = await postJson(base, "/jobs/batch", payload);
        expect(answer.status).toBe(400);
        expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect((answer.json as Problem).errors?.map((e) => e.path)).toContain(path);
      }
      const malformed = await postJson(base, "/jobs/batch", '{"jobs": [');
      expect(malformed.status).toBe(400);
      expect((malformed.json as Problem).type).toBe("https://ix.dev/problems/malformed-json");
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("1,000 items: one result each, in order; the same batch again answers 200 for every item", async ({ database: { db } }) => {
    const { app, base } = await listeningApp(db);
    await registerTestWorker(db, ["ocr"]);
    try {
      const items = Array.from({ length: MAX_BATCH_JOBS }, (_, i) => body({ use_case: KNOWN[i % 2], priority: i % 7 }));
      const first = resultsOf(await postJson(base, "/jobs/batch", { jobs: items }));
      expect(first.map((r) => r.status)).toEqual(items.map(() => 201));
      expect(first.map((r) => "job" in r && r.job.request_id)).toEqual(items.map((item) => item.request_id));
      expect(await jobCount(db)).toBe(MAX_BATCH_JOBS);

      const again = resultsOf(await postJson(base, "/jobs/batch", { jobs: items }));
      expect(again.map((r) => r.status)).toEqual(items.map(() => 200));
      expect(again.map((r) => "job" in r && r.job.job_id)).toEqual(first.map((r) => "job" in r && r.job.job_id));
      expect(await jobCount(db)).toBe(MAX_BATCH_JOBS);
    } finally {
      await app.close();
    }
  });

  test("an item larger than one submission may be is that item's 413; a batch over its own limit is a 413", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApp(db, { bodyLimitBytes: 4_096, batchBodyLimitBytes: 65_536 });
    try {
      const large = body({ context: { texts: ["x".repeat(5_000)] } });
      const alone = await postJson(base, "/jobs", large);
      expect(alone.status).toBe(413);
      const small = body();
      const results = resultsOf(await postJson(base, "/jobs/batch", { jobs: [large, small] }));
      expect(results.map((r) => r.status)).toEqual([413, 201]);
      expect(results[0]).toMatchObject({ problem: { type: "https://ix.dev/problems/payload-too-large", status: 413 } });

      const tooMany = Array.from({ length: 40 }, () => body({ context: { texts: ["y".repeat(2_000)] } }));
      const whole = await postJson(base, "/jobs/batch", { jobs: tooMany });
      expect(whole.status).toBe(413);
      expect((whole.json as Problem).type).toBe("https://ix.dev/problems/payload-too-large");
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("with keys: 401 without one; without keys any client's submissions are taken", async ({ database: { db } }) => {
    const keyed = await listeningApp(db, { apiKeys: KEYS });
    try {
      const answer = await postJson(keyed.base, "/jobs/batch", { jobs: [body()] });
      expect(answer.status).toBe(401);
      expect(answer.headers.get("www-authenticate")).toContain("Bearer");
    } finally {
      await keyed.app.close();
    }
    const open = await listeningApp(db, {});
    try {
      const results = resultsOf(await postJson(open.base, "/jobs/batch", { jobs: [body(), body({ ix_client_id: "client-b" })] }));
      expect(results.map((r) => r.status)).toEqual([201, 201]);
    } finally {
      await open.app.close();
    }
  });

  test("when the database is unavailable the whole request is a 503 with Retry-After, and nothing is stored", async ({
    database,
  }) => {
    // The only connection is held: every statement times out waiting for one.
    const starved = database.connect({ max: 1, connectionTimeoutMillis: 200 });
    const { app, base } = await listeningApp(starved, { retryAfterSeconds: 4 });
    const held = await starved.$client.connect();
    try {
      const answer = await postJson(base, "/jobs/batch", { jobs: [body(), { nope: true }, body()] });
      expect(answer.status).toBe(503);
      expect(answer.headers.get("retry-after")).toBe("4");
      expect((answer.json as Problem).type).toBe("https://ix.dev/problems/unavailable");
    } finally {
      held.release();
      await app.close();
    }
    expect(await jobCount(database.db)).toBe(0);
  });
});

describe("unknown use_case", () => {
  test("POST /jobs answers 422 naming the use_case and the known ones, and stores nothing", async ({ database: { db } }) => {
    const { app, base } = await listeningApp(db);
    await registerTestWorker(db, ["ocr"]);
    try {
      const answer = await postJson(base, "/jobs", body({ use_case: "no_such_case" }));
      expect(answer.status).toBe(422);
      expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const problem = answer.json as Problem;
      expect(problem).toMatchObject({ type: "https://ix.dev/problems/unknown-use-case", status: 422, known_use_cases: KNOWN });
      expect(problem.detail).toContain('"no_such_case"');
      expect(problem.detail).toContain(`known: ${KNOWN.join(", ")}`);
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("a use_case registered a moment ago is accepted at once, without waiting for the cache", async ({ database: { db } }) => {
    const { app, base } = await listeningApp(db);
    try {
      expect((await postJson(base, "/jobs", body())).status).toBe(201); // the known set is now cached
      expect((await postJson(base, "/jobs", body({ use_case: "translate" }))).status).toBe(422);
      await registerTestWorker(db, ["translate"]);
      expect((await postJson(base, "/jobs", body({ use_case: "translate" }))).status).toBe(201);
      const results = resultsOf(await postJson(base, "/jobs/batch", { jobs: [body({ use_case: "translate" })] }));
      expect(results.map((r) => r.status)).toEqual([201]);
    } finally {
      await app.close();
    }
  });

  test("a worker not seen within IX_WORKER_REGISTRY_DAYS no longer makes its use_case known", async ({ database: { db } }) => {
    const { app: week, base } = await listeningApp(db, { workerRegistryDays: 7 });
    const month = await listeningApp(db, { workerRegistryDays: 30 });
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '8 days'`);
    try {
      const refused = await postJson(base, "/jobs", body());
      expect(refused.status).toBe(422);
      expect((refused.json as Problem).known_use_cases).toEqual([]);
      expect((await postJson(month.base, "/jobs", body())).status).toBe(201);
    } finally {
      await week.close();
      await month.app.close();
    }
  });
});
