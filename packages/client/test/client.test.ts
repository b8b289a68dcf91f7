import { createServer, type Server } from "node:http";
import { jobs } from "@ix/store";
import { finishRun, insertJob, test } from "@ix/testing";
import { describe, expect, it } from "vitest";
import {
  createClient,
  IxError,
  IxNetworkError,
  IxProblemError,
  IxTimeoutError,
  IxWaitTimeoutError,
  type Job,
  type JobList,
} from "../src/index.ts";
import { KEY_A, KEY_B, KEYS, listeningApi, submission } from "./api.ts";

// Every method against the real API on a real socket, over a real database.

/** The error a promise rejects with (failing the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

async function problemOf(promise: Promise<unknown>, status: number): Promise<IxProblemError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(IxProblemError);
  const problem = error as IxProblemError;
  expect(problem.status).toBe(status);
  expect(problem.problem?.status).toBe(status);
  return problem;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe("submit and submitBatch", () => {
  test("201 a new job, 200 the same request again, 409 a different one under the same request_id", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const body = submission({ priority: 3 });
      const created = await client.submit(body);
      expect(created.status).toBe(201);
      expect(created.job).toMatchObject({ status: "pending", request_id: body.request_id, priority: 3, request: { options: {} } });
      expect(await jobs.get(db, created.job.job_id)).toEqual(created.job);

      expect(await client.submit(body)).toEqual({ status: 200, job: created.job });

      const conflict = await problemOf(client.submit({ ...body, priority: 4 }), 409);
      expect(conflict.problem?.job_id).toBe(created.job.job_id);
      expect(conflict.request).toEqual({ method: "POST", path: "/jobs" });
      expect(conflict.message).toContain("POST /jobs answered 409");
    } finally {
      await app.close();
    }
  });

  test("a bad body is a 400 naming the field; an unserved use_case a 422 naming the served ones", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const invalid = await problemOf(client.submit({ ...submission(), use_case: "Not Valid" }), 400);
      expect(invalid.problem?.errors?.map((e) => e.path)).toEqual(["use_case"]);
      expect(invalid.message).toContain("use_case:");
      const unserved = await problemOf(client.submit(submission({ use_case: "ocr" })), 422);
      expect(unserved.problem?.known_use_cases).toEqual(["extract_fields"]);
      expect(await jobs.listJobs(db, { clientId: "client-a", limit: 10 })).toMatchObject({ items: [] });
    } finally {
      await app.close();
    }
  });

  test("submitBatch answers each item in order; a refused request as a whole throws", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const first = submission();
      const results = await client.submitBatch([first, submission({ use_case: "ocr" }), first, { ...first, priority: 9 }]);
      expect(results.map((r) => r.status)).toEqual([201, 422, 200, 409]);
      const [created, , again] = results;
      if (created?.status !== 201 || again?.status !== 200) throw new Error("unexpected results");
      expect(again.job).toEqual(created.job);
      expect(results[1]).toMatchObject({ problem: { known_use_cases: ["extract_fields"] } });

      const empty = await problemOf(client.submitBatch([]), 400);
      expect(empty.request.path).toBe("/jobs/batch");
    } finally {
      await app.close();
    }
  });
});

describe("get, getByRequestId, cancel, retry", () => {
  test("read a job by id and by request_id; unknown ones are 404s", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const { job } = await client.submit(submission());
      expect(await client.get(job.job_id)).toEqual(job);
      expect(await client.getByRequestId(job.request_id, { clientId: "client-a" })).toEqual(job);

      await problemOf(client.get("00000000-0000-4000-8000-000000000000"), 404);
      await problemOf(client.get("not-a-uuid"), 400);
      await problemOf(client.getByRequestId(job.request_id, { clientId: "client-b" }), 404);
      // Without keys the API needs to be told whose request_id it is.
      const unnamed = await problemOf(client.getByRequestId(job.request_id), 400);
      expect(unnamed.problem?.errors?.[0]?.path).toBe("client_id");
    } finally {
      await app.close();
    }
  });

  test("cancel: 200 a pending job, 202 a running one, 409 an ended one; retry: 200 an ended one, 409 otherwise", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const pending = await insertJob(db);
      const cancelled = await client.cancel(pending.job_id);
      expect(cancelled).toMatchObject({ status: 200, job: { job_id: pending.job_id, status: "cancelled" } });

      const running = await insertJob(db, { status: "running" });
      expect(await client.cancel(running.job_id)).toMatchObject({ status: 202, job: { status: "running", cancel_requested_at: expect.any(String) } });

      const ended = await problemOf(client.cancel(cancelled.job.job_id), 409);
      expect(ended.problem?.job_id).toBe(pending.job_id);

      // Cancelled before it ever ran: pending again with no run counted.
      const retried = await client.retry(pending.job_id);
      expect(retried).toMatchObject({ job_id: pending.job_id, status: "pending", attempts: 0 });
      await problemOf(client.retry(pending.job_id), 409);
      await problemOf(client.cancel("00000000-0000-4000-8000-000000000000"), 404);
    } finally {
      await app.close();
    }
  });

  test("with keys: the key is sent, its client's jobs are found, another client's are 404, a wrong key is 401", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApi(db, { apiKeys: KEYS });
    try {
      const a = createClient({ baseUrl: base, apiKey: KEY_A });
      const b = createClient({ baseUrl: base, apiKey: KEY_B });
      const { job } = await a.submit(submission());
      expect(await a.getByRequestId(job.request_id)).toEqual(job);
      await problemOf(b.get(job.job_id), 404);
      await problemOf(b.cancel(job.job_id), 404);
      await problemOf(createClient({ baseUrl: base, apiKey: "not-a-key" }).get(job.job_id), 401);
      await problemOf(createClient({ baseUrl: base }).get(job.job_id), 401);
    } finally {
      await app.close();
    }
  });
});

describe("list", () => {
  test("iterates every page, newest first, with the status filter; resumes from a cursor", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const created: Job[] = [];
      for (let i = 0; i < 5; i++) created.push((await client.submit(submission())).job);
      await client.submit(submission({ ix_client_id: "client-b" }));
      await client.cancel(created[1]!.job_id);

      const pages: JobList[] = [];
      for await (const page of client.list({ clientId: "client-a", pageSize: 2 })) pages.push(page);
      expect(pages.map((p) => p.items.length)).toEqual([2, 2, 1]);
      expect(pages.at(-1)?.next_cursor).toBeNull();
      const listed = pages.flatMap((p) => p.items.map((job) => job.job_id));
      expect(listed).toEqual(created.map((job) => job.job_id).reverse());

      const cancelled: Job[] = [];
      for await (const page of client.list({ clientId: "client-a", status: "cancelled" })) cancelled.push(...page.items);
      expect(cancelled.map((job) => job.job_id)).toEqual([created[1]!.job_id]);
      // Without keys (as with an admin key) leaving clientId out lists every client's; useCase narrows.
      const everyone: Job[] = [];
      for await (const page of client.list({ useCase: created[0]!.request.use_case })) everyone.push(...page.items);
      expect(everyone).toHaveLength(6);
      for await (const page of client.list({ useCase: "no-such-use-case" })) expect(page.items).toEqual([]);

      const resumed: string[] = [];
      for await (const page of client.list({ clientId: "client-a", pageSize: 2, cursor: pages[0]!.next_cursor! })) {
        resumed.push(...page.items.map((job) => job.job_id));
      }
      expect(resumed).toEqual(listed.slice(2));

      // Breaking out stops the requests: the generator asks for no page nobody reads.
      const seen: string[] = [];
      for await (const page of client.list({ clientId: "client-a", pageSize: 1 })) {
        seen.push(page.items[0]!.job_id);
        break;
      }
      expect(seen).toEqual([listed[0]]);
    } finally {
      await app.close();
    }
  });

  test("bad queries are the API's 400s: a request_id without client_id, a page too large, a forged cursor", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const drain = async (options: Parameters<typeof client.list>[0]) => {
        for await (const _ of client.list(options)) {
          // only the first request matters here
        }
      };
      expect((await problemOf(client.getByRequestId("r-1"), 400)).problem?.errors?.[0]?.path).toBe("client_id");
      expect((await problemOf(drain({ clientId: "client-a", pageSize: 201 }), 400)).problem?.errors?.[0]?.path).toBe("limit");
      await problemOf(drain({ clientId: "client-a", cursor: "forged" }), 400);
    } finally {
      await app.close();
    }
  });
});

describe("wait", () => {
  test("returns the job once it ends, reporting each state read", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const running = await insertJob(db, { status: "running" });
      const seen: string[] = [];
      const waiting = client.wait(running.job_id, { intervalMs: 20, onPoll: (job) => seen.push(job.status) });
      await expect.poll(() => seen.length).toBeGreaterThan(0);
      await finishRun(db, running);
      const done = await waiting;
      expect(done).toMatchObject({ job_id: running.job_id, status: "done" });
      expect(seen.at(-1)).toBe("done");
      expect(new Set(seen)).toEqual(new Set(["running", "done"]));

      // error and cancelled end a wait too; a job already ended returns at once.
      const failing = await insertJob(db, { status: "running" });
      await finishRun(db, failing, "boom");
      expect(await client.wait(failing.job_id)).toMatchObject({ status: "error", response: { error: "boom" } });
    } finally {
      await app.close();
    }
  });

  test("gives up at the timeout with the last state seen; the caller's abort rejects with its reason; a 404 at once", async ({
    database: { db },
  }) => {
    const { app, base } = await listeningApi(db);
    try {
      const client = createClient({ baseUrl: base });
      const pending = await insertJob(db);
      const started = Date.now();
      const timedOut = await rejection(client.wait(pending.job_id, { timeoutMs: 300, intervalMs: 50 }));
      expect(timedOut).toBeInstanceOf(IxWaitTimeoutError);
      expect(timedOut).toMatchObject({ jobId: pending.job_id, timeoutMs: 300, job: { status: "pending" } });
      expect((timedOut as Error).message).toBe(`job ${pending.job_id} still pending after 0.3 s`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);

      const controller = new AbortController();
      const waiting = client.wait(pending.job_id, { intervalMs: 20, signal: controller.signal });
      const reason = new Error("the caller stopped waiting");
      setTimeout(() => controller.abort(reason), 100);
      expect(await rejection(waiting)).toBe(reason);

      await problemOf(client.wait("00000000-0000-4000-8000-000000000000", { intervalMs: 20 }), 404);
    } finally {
      await app.close();
    }
  });

  test("reads through an API restart: unreachable for a while, then the job, ended", async ({ database: { db } }) => {
    const first = await listeningApi(db);
    const client = createClient({ baseUrl: first.base, timeoutMs: 1_000 });
    const running = await insertJob(db, { status: "running" });
    const seen: string[] = [];
    const waiting = client.wait(running.job_id, { intervalMs: 20, timeoutMs: 30_000, onPoll: (job) => seen.push(job.status) });
    await expect.poll(() => seen.length).toBeGreaterThan(0);
    await first.app.close();
    // Several reads fail while nothing listens; the job ends meanwhile.
    await finishRun(db, running);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await listeningApi(db, {}, first.port);
    try {
      expect(await waiting).toMatchObject({ status: "done" });
    } finally {
      await second.app.close();
    }
  });
});

describe("failures without an API answer", () => {
  it("nothing listening: IxNetworkError naming the URL and the cause", async () => {
    const server = createServer();
    const base = await listen(server);
    await new Promise((resolve) => server.close(resolve));
    const client = createClient({ baseUrl: base });
    const error = await rejection(client.get("00000000-0000-4000-8000-000000000000"));
    expect(error).toBeInstanceOf(IxNetworkError);
    expect(error).not.toBeInstanceOf(IxTimeoutError);
    expect((error as Error).message).toMatch(new RegExp(`^cannot reach the ix API at ${base}: .*ECONNREFUSED`));
    // A wait that never read the job does not wait out its timeout: a wrong URL fails at once.
    const started = Date.now();
    expect(await rejection(client.wait("00000000-0000-4000-8000-000000000000", { timeoutMs: 60_000 }))).toBeInstanceOf(IxNetworkError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("no answer within timeoutMs: IxTimeoutError, after about that long", async () => {
    const server = createServer(() => {
      // never answers
    });
    const base = await listen(server);
    try {
      const started = Date.now();
      const error = await rejection(createClient({ baseUrl: base, timeoutMs: 200 }).get("00000000-0000-4000-8000-000000000000"));
      expect(error).toBeInstanceOf(IxTimeoutError);
      expect(error).toMatchObject({ timeoutMs: 200 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("an error page that is not a problem, and a 2xx that is not JSON, are errors naming what came", async () => {
    const server = createServer((req, res) => {
      if (req.url?.startsWith("/jobs/")) res.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad Gateway</h1>");
      else res.writeHead(200, { "content-type": "text/html" }).end("<html>a different service</html>");
    });
    const base = await listen(server);
    try {
      const client = createClient({ baseUrl: base });
      const gateway = await rejection(client.get("00000000-0000-4000-8000-000000000000"));
      expect(gateway).toBeInstanceOf(IxProblemError);
      expect(gateway).toMatchObject({ status: 502, problem: null, body: "<h1>Bad Gateway</h1>" });
      expect((gateway as Error).message).toContain("answered 502 without problem details: <h1>Bad Gateway</h1>");
      const html = await rejection(client.getByRequestId("r", { clientId: "c" }));
      expect(html).toBeInstanceOf(IxError);
      expect((html as Error).message).toContain("not JSON");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("createClient", () => {
  test("keeps a base URL's path prefix and sends every request through the fetch it is given", async ({ database: { db } }) => {
    const { app, base } = await listeningApi(db);
    try {
      const urls: string[] = [];
      // A gateway that serves the API under /ix: strips the prefix it routes on.
      const gateway: typeof fetch = (input, init) => {
        const url = String(input);
        urls.push(url);
        return fetch(url.replace(`${base}/ix/`, `${base}/`), init);
      };
      const client = createClient({ baseUrl: `${base}/ix/`, fetch: gateway });
      expect(client.baseUrl).toBe(`${base}/ix`);
      const { job } = await client.submit(submission());
      await client.get(job.job_id);
      expect(urls).toEqual([`${base}/ix/jobs`, `${base}/ix/jobs/${job.job_id}`]);
    } finally {
      await app.close();
    }
  });

  it("refuses a base URL that is not http(s) and a timeout that is not positive", () => {
    expect(() => createClient({ baseUrl: "ftp://example.com" })).toThrow(/baseUrl must be an http\(s\) URL/);
    expect(() => createClient({ baseUrl: "not a url" })).toThrow(TypeError);
    expect(() => createClient({ baseUrl: "http://x/?a=1" })).toThrow(/query/);
    expect(() => createClient({ baseUrl: "http://x", timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
