import type { ServerResponse } from "node:http";
import { callbackState, test } from "@ix/testing";
import { type Database, jobs, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { builtinPipelines, createWorker, type Worker } from "../src/index.ts";
import { type Receiver, startReceiver, submit, testConfig, waitFor } from "./fixtures/index.ts";

type Overrides = Parameters<typeof testConfig>[0];

async function withWorker<T>(db: Database, overrides: Overrides, body: (worker: Worker) => Promise<T>): Promise<T> {
  const worker = createWorker({ db, pipelines: builtinPipelines(), config: testConfig(overrides) });
  await worker.start();
  try {
    return await body(worker);
  } finally {
    await worker.stop({ graceSeconds: 5 });
  }
}

async function finalCallback(db: Database, jobId: string) {
  return waitFor(`callback of ${jobId} to settle`, async () => {
    const job = await jobs.get(db, jobId);
    if (!job?.callback_status) return undefined;
    return { status: job.callback_status, ...(await callbackState(db, jobId)) };
  });
}

async function withReceivers<T>(receivers: Receiver[], body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    await Promise.all(receivers.map((r) => r.close()));
  }
}

/** Answers 500 with a body far over any cap, writing until the client goes away; reports how much it wrote. */
function hugeBody(total: number, written: { bytes: number; closedEarly: boolean }) {
  return (res: ServerResponse) => {
    res.writeHead(500, { "content-type": "text/plain", "content-length": String(total) });
    const chunk = Buffer.alloc(64 * 1024, "x");
    const pump = () => {
      while (written.bytes < total) {
        written.bytes += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      res.end();
    };
    res.on("close", () => {
      if (!res.writableFinished) written.closedEarly = true;
    });
    pump();
  };
}

describe("delivery outcomes against real receivers", () => {
  test("fails twice then succeeds: delivered on attempt 3, same webhook-id every time", async ({ database: { db } }) => {
    const receiver = await startReceiver((res, n) => res.writeHead(n <= 2 ? 503 : 200).end(n <= 2 ? "busy" : "ok"));
    await withReceivers([receiver], () =>
      withWorker(db, {}, async () => {
        const job = await submit(db, {}, receiver.url);
        expect(await finalCallback(db, job.job_id)).toEqual({ status: "delivered", attempts: 3, nextAttemptAt: null, lastError: null });
        expect(receiver.received.map((r) => r.headers["webhook-id"])).toEqual([job.job_id, job.job_id, job.job_id]);
      }),
    );
  });

  test("always failing: failed after the last attempt, with the receiver's answer as the reason", async ({ database: { db } }) => {
    const receiver = await startReceiver((res) => res.writeHead(500).end("database is down"));
    await withReceivers([receiver], () =>
      withWorker(db, { callback: { maxAttempts: 3 } }, async () => {
        const job = await submit(db, {}, receiver.url);
        expect(await finalCallback(db, job.job_id)).toEqual({
          status: "failed",
          attempts: 3,
          nextAttemptAt: null,
          lastError: "HTTP 500: database is down",
        });
        expect(receiver.received).toHaveLength(3);
      }),
    );
  });

  test("a receiver that hangs is cut off at the per-attempt timeout", async ({ database: { db } }) => {
    const receiver = await startReceiver(() => {}); // never answers
    await withReceivers([receiver], () =>
      withWorker(db, { callback: { timeoutSeconds: 0.3, maxAttempts: 2 } }, async () => {
        const job = await submit(db, {}, receiver.url);
        const settled = await finalCallback(db, job.job_id);
        expect(settled).toMatchObject({ status: "failed", attempts: 2 });
        expect(settled.lastError).toBe("no complete response within 0.3 s (IX_CALLBACK_TIMEOUT_SECONDS)");
      }),
    );
  });

  test("a redirect is not followed and counts as a failed attempt", async ({ database: { db } }) => {
    const elsewhere = await startReceiver();
    const receiver = await startReceiver((res) => res.writeHead(302, { location: elsewhere.url }).end());
    await withReceivers([receiver, elsewhere], () =>
      withWorker(db, { callback: { maxAttempts: 2 } }, async () => {
        const job = await submit(db, {}, receiver.url);
        const settled = await finalCallback(db, job.job_id);
        expect(settled).toMatchObject({ status: "failed", attempts: 2 });
        expect(settled.lastError).toBe(`HTTP 302 redirect to ${elsewhere.url} not followed`);
        expect(elsewhere.received).toHaveLength(0);
      }),
    );
  });

  test("a body far over the cap is not read: the connection is dropped and the error stays short", async ({ database: { db } }) => {
    const total = 256 * 1024 * 1024;
    const written = { bytes: 0, closedEarly: false };
    const receiver = await startReceiver(hugeBody(total, written));
    await withReceivers([receiver], () =>
      withWorker(db, { callback: { maxAttempts: 1 } }, async () => {
        const job = await submit(db, {}, receiver.url);
        const settled = await finalCallback(db, job.job_id);
        expect(settled).toMatchObject({ status: "failed", attempts: 1 });
        expect(settled.lastError).toMatch(/^HTTP 500: x{200}$/);
        await waitFor("the receiver to see the connection dropped", () => written.closedEarly);
        expect(written.bytes).toBeLessThan(total);
      }),
    );
  });

  test("misbehaving receivers do not harm the worker: other jobs and callbacks proceed", async ({ database: { db } }) => {
    const hang = await startReceiver(() => {});
    const redirect = await startReceiver((res) => res.writeHead(302, { location: "http://127.0.0.1:1/" }).end());
    const huge = await startReceiver(hugeBody(64 * 1024 * 1024, { bytes: 0, closedEarly: false }));
    const failing = await startReceiver((res) => res.writeHead(500).end());
    const good = await startReceiver();
    await withReceivers([hang, redirect, huge, failing, good], () =>
      withWorker(db, { concurrency: 4, callback: { timeoutSeconds: 0.5, maxAttempts: 2, concurrency: 3 } }, async () => {
        const bad = await Promise.all([hang, redirect, huge, failing].map((r) => submit(db, {}, r.url)));
        const plain = await Promise.all(Array.from({ length: 20 }, () => submit(db)));
        const fine = await submit(db, {}, good.url);
        for (const job of bad) expect((await finalCallback(db, job.job_id)).status).toBe("failed");
        expect((await finalCallback(db, fine.job_id)).status).toBe("delivered");
        const done = await db.execute<{ n: number }>(
          sql`select count(*)::int as n from ix_jobs where status = 'done' and job_id = any(${sql.param(plain.map((j) => j.job_id))}::uuid[])`,
        );
        expect(done.rows[0]?.n).toBe(20);
        expect(good.received).toHaveLength(1);
      }),
    );
  });
});

describe("durable delivery", () => {
  test("a new worker resumes a delivery another worker scheduled for retry", async ({ database: { db } }) => {
    let healthy = false;
    const receiver = await startReceiver((res) => res.writeHead(healthy ? 200 : 502).end());
    await withReceivers([receiver], async () => {
      // A fixed half-hour retry delay: with the test schedule's 0.2 s cap the
      // retry could fall due before the second worker looks (a flake seen once).
      const first = createWorker({
        db,
        pipelines: builtinPipelines(),
        config: testConfig({ callback: { retryBaseSeconds: 3600, retryMaxSeconds: 3600 } }),
        random: () => 0.5,
      });
      const job = await submit(db, {}, receiver.url);
      await first.runOnce();
      expect(await first.deliverDueOnce()).toBe(1);
      await first.stop({ graceSeconds: 1 });
      const state = await callbackState(db, job.job_id);
      expect(state).toMatchObject({ attempts: 1, lastError: "HTTP 502" });
      expect(state?.nextAttemptAt).not.toBeNull();

      healthy = true;
      const second = createWorker({ db, pipelines: builtinPipelines(), config: testConfig() });
      // Not due yet for the database clock; due once that instant passes.
      expect(await second.deliverDueOnce()).toBe(0);
      expect(await second.deliverDueOnce({ now: new Date(Date.now() + 2 * 3600 * 1000) })).toBe(1);
      expect(await finalCallback(db, job.job_id)).toEqual({ status: "delivered", attempts: 2, nextAttemptAt: null, lastError: null });
      expect(receiver.received).toHaveLength(2);
    });
  });

  test("two workers delivering at once never send the same attempt", async ({ database }) => {
    const receiver = await startReceiver();
    await withReceivers([receiver], async () => {
      const [a, b] = [0, 1].map(() =>
        createWorker({ db: database.connect(), pipelines: builtinPipelines(), config: testConfig({ concurrency: 16 }) }),
      );
      if (!a || !b) throw new Error("unreachable");
      const submitted = await Promise.all(Array.from({ length: 60 }, () => submit(database.db, {}, receiver.url)));
      while ((await a.runOnce()) > 0);
      const drain = async (w: Worker) => {
        let sent = 0;
        for (let n = await w.deliverDueOnce(); n > 0; n = await w.deliverDueOnce()) sent += n;
        return sent;
      };
      const [sentA, sentB] = await Promise.all([drain(a), drain(b)]);
      expect(sentA + sentB).toBe(60);
      const ids = receiver.received.map((r) => String(r.headers["webhook-id"]));
      expect(new Set(ids).size).toBe(60);
      expect(ids).toHaveLength(60);
      expect(new Set(ids)).toEqual(new Set(submitted.map((j) => j.job_id)));
    });
  });
});

describe("SSRF guard", () => {
  test("non-public targets are refused at connect time unless allowed", async ({ database: { db } }) => {
    const receiver = await startReceiver();
    await withReceivers([receiver], async () => {
      const port = receiver.port;
      const refused = {
        [`http://10.0.0.1:${port}/hook`]: /^refused: callback target 10\.0\.0\.1 is private \(10\.0\.0\.0\/8\)/,
        "http://169.254.169.254/latest/meta-data": /^refused: callback target 169\.254\.169\.254 is link-local/,
        [`http://[::1]:${port}/hook`]: /^refused: callback target ::1 is loopback/,
        [`http://[::ffff:127.0.0.1]:${port}/hook`]: /^refused: callback target ::ffff:7f00:1 is IPv4-mapped IPv6/,
        "http://100.64.0.1/hook": /^refused: callback target 100\.64\.0\.1 is carrier-grade NAT/,
        [`http://localhost:${port}/hook`]: /^refused: callback target localhost \((127\.0\.0\.1|::1)\) is loopback/,
        // A public-looking name whose DNS answer points inside (the rebinding trick).
        [`http://hooks.rebind.test:${port}/hook`]: /^refused: callback target hooks\.rebind\.test \(127\.0\.0\.1\) is loopback/,
      };
      const resolve = async (hostname: string) =>
        hostname === "hooks.rebind.test" ? [{ address: "127.0.0.1" }] : (await import("node:dns/promises")).lookup(hostname, { all: true });
      const strict = createWorker({
        db,
        pipelines: builtinPipelines(),
        config: testConfig({ concurrency: 16, callback: { allowedHosts: [], resolve, concurrency: 16 } }),
      });
      const submitted = await Promise.all(Object.keys(refused).map((url) => submit(db, {}, url)));
      expect(await strict.runOnce()).toBe(submitted.length);
      expect(await strict.deliverDueOnce()).toBe(submitted.length);
      for (const [url, reason] of Object.entries(refused)) {
        const job = submitted.find((j) => j.callback_url === url);
        if (!job) throw new Error(`no job for ${url}`);
        const state = await finalCallback(db, job.job_id);
        // Refused is final at once: resending cannot change where the target points.
        expect(state, url).toMatchObject({ status: "failed", attempts: 1 });
        expect(state.lastError, url).toMatch(reason);
        expect(state.lastError, url).toMatch(/allow it with IX_CALLBACK_ALLOWED_HOSTS$/);
      }
      expect(receiver.received).toHaveLength(0);

      const allowing = createWorker({ db, pipelines: builtinPipelines(), config: testConfig({ callback: { allowedHosts: ["127.0.0.1"] } }) });
      const job = await submit(db, {}, receiver.url);
      expect(await allowing.runOnce()).toBe(1);
      expect(await allowing.deliverDueOnce()).toBe(1);
      expect(await finalCallback(db, job.job_id)).toMatchObject({ status: "delivered", attempts: 1 });
      expect(receiver.received).toHaveLength(1);
    });
  });
});
