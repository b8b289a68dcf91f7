import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { callbackState, test } from "@ix/testing";
import { type Database, ixJobs, jobs, sql } from "@ix/store";
import { describe, expect } from "vitest";
import { builtinPipelines, createWorker, definePipeline, type Worker } from "../src/index.ts";
import { capturingLogger, type Receiver, startReceiver, submit, testConfig, waitFor } from "./fixtures/index.ts";

type Overrides = Parameters<typeof testConfig>[0];

async function closeAll(receivers: Array<{ close(): Promise<void> }>): Promise<void> {
  await Promise.all(receivers.map((r) => r.close()));
}

async function settled(db: Database, jobId: string) {
  return waitFor(`callback of ${jobId} to settle`, async () => {
    const job = await jobs.get(db, jobId);
    if (!job?.callback_status) return undefined;
    return { status: job.callback_status, ...(await callbackState(db, jobId)) };
  });
}

async function hostsRows(db: Database) {
  const rows = await db.execute<{ host: string; consecutive_failures: number; paused: boolean }>(
    sql`select host, consecutive_failures, paused_until > now() as paused from ix_callback_hosts order by host`,
  );
  return rows.rows;
}

describe("callbacks are fair to every client", () => {
  test("alice's hanging receiver holds two slots; bob's callback arrives while all of hers still hang", async ({ database: { db } }) => {
    const open = new Set<IncomingMessage>();
    let peakOpen = 0;
    const hang = await startReceiver((_res, _n, req) => {
      open.add(req);
      peakOpen = Math.max(peakOpen, open.size);
      req.socket.on("close", () => open.delete(req));
    });
    const healthy = await startReceiver();
    const worker = createWorker({
      db,
      pipelines: builtinPipelines(),
      config: testConfig({ concurrency: 8, callback: { timeoutSeconds: 30, concurrency: 8, hostConcurrency: 2, maxAttempts: 1 } }),
    });
    try {
      await worker.start();
      const alice = await Promise.all(Array.from({ length: 30 }, () => submit(db, { ix_client_id: "alice" }, hang.url)));
      await waitFor("alice's first deliveries to hang", () => hang.received.length >= 2);
      const bob = await submit(db, { ix_client_id: "bob" }, healthy.url);
      await waitFor("bob's callback", () => healthy.received.length === 1);
      // Her attempts hang for 30 s; none has ended, yet bob's arrived.
      const ended = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from ix_jobs where client_id = 'alice' and (callback_last_error is not null or callback_status is not null)`,
      );
      expect(ended.rows[0]?.n).toBe(0);
      expect(healthy.received[0]?.headers["webhook-id"]).toBe(bob.job_id);
      expect((await settled(db, bob.job_id)).status).toBe("delivered");
      expect(hang.received.length).toBe(2);
      expect(peakOpen).toBe(2);
      expect(alice).toHaveLength(30);
    } finally {
      await worker.stop({ graceSeconds: 0.1 });
      await closeAll([hang, healthy]);
    }
  });

  test("a host failing N times in a row is paused: its other deliveries spend no attempts", async ({ database: { db } }) => {
    const failing = await startReceiver((res) => res.writeHead(503).end("down for maintenance"));
    const config: Overrides = {
      concurrency: 8,
      callback: { hostConcurrency: 2, maxAttempts: 10, breaker: { failures: 2, cooldownSeconds: 3600 } },
    };
    const worker = createWorker({ db, pipelines: builtinPipelines(), config: testConfig(config) });
    try {
      const submitted = await Promise.all(Array.from({ length: 6 }, () => submit(db, {}, failing.url)));
      expect(await worker.runOnce()).toBe(6);
      // Two in flight (the host cap), both fail: the breaker opens.
      expect(await worker.deliverDueOnce()).toBe(2);
      const host = new URL(failing.url).host;
      expect(await hostsRows(db)).toEqual([{ host, consecutive_failures: 2, paused: true }]);
      expect(await worker.deliverDueOnce()).toBe(0);
      expect(await worker.deliverDueOnce({ now: new Date(Date.now() + 1800_000) })).toBe(0);
      expect(failing.received).toHaveLength(2);
      const attempts = await Promise.all(submitted.map(async (j) => (await callbackState(db, j.job_id))?.attempts));
      expect(attempts.sort()).toEqual([0, 0, 0, 0, 1, 1]);
      // After the cool-down one probe per slot goes out; it fails, and the host is paused again at once.
      expect(await worker.deliverDueOnce({ now: new Date(Date.now() + 3700_000) })).toBe(2);
      expect(failing.received).toHaveLength(4);
      expect(await hostsRows(db)).toEqual([{ host, consecutive_failures: 4, paused: true }]);
    } finally {
      await worker.stop({ graceSeconds: 1 });
      await failing.close();
    }
  });
});

describe("what receivers say is honoured", () => {
  test("410 Gone ends delivery at once; Retry-After pushes the next attempt out", async ({ database: { db } }) => {
    const gone = await startReceiver((res) => res.writeHead(410).end("this hook was deleted"));
    const later = await startReceiver((res) => res.writeHead(503, { "retry-after": "1800" }).end());
    const worker = createWorker({
      db,
      pipelines: builtinPipelines(),
      config: testConfig({ callback: { maxAttempts: 5, retryMaxSeconds: 3600 } }),
      random: () => 0,
    });
    try {
      const a = await submit(db, {}, gone.url);
      const b = await submit(db, {}, later.url);
      await worker.runOnce();
      expect(await worker.deliverDueOnce()).toBe(2);
      expect(await callbackState(db, a.job_id)).toMatchObject({ attempts: 1, nextAttemptAt: null, lastError: "HTTP 410: this hook was deleted" });
      expect((await jobs.get(db, a.job_id))?.callback_status).toBe("failed");
      const retry = await callbackState(db, b.job_id);
      expect(retry).toMatchObject({ attempts: 1, lastError: "HTTP 503" });
      const wait = (retry?.nextAttemptAt?.getTime() ?? 0) - Date.now();
      expect(wait).toBeGreaterThan(1700_000);
      expect(wait).toBeLessThan(1801_000);
    } finally {
      await worker.stop({ graceSeconds: 1 });
      await closeAll([gone, later]);
    }
  });
});

/** A CONNECT proxy on 127.0.0.1 that tunnels to any target, or answers `refuse` to every CONNECT. */
async function startConnectProxy({ refuse }: { refuse?: number } = {}) {
  const connects: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((_req, res) => res.writeHead(405).end());
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    connects.push(String(req.url));
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    if (refuse !== undefined) {
      client.end(`HTTP/1.1 ${refuse} Refused\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    const [host, port] = String(req.url).split(":");
    const upstream = netConnect(Number(port), host ?? "", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("an egress proxy (IX_CALLBACK_PROXY_URL)", () => {
  test("every delivery is tunnelled through it; its 403 is final; a private IP literal never reaches it", async ({ database: { db } }) => {
    const receiver = await startReceiver();
    const proxy = await startConnectProxy();
    const refusing = await startConnectProxy({ refuse: 403 });
    const through = (proxyUrl: string) =>
      createWorker({ db, pipelines: builtinPipelines(), config: testConfig({ callback: { proxyUrl, maxAttempts: 3 } }) });
    const viaProxy = through(proxy.url);
    const viaRefusing = through(refusing.url);
    try {
      const ok = await submit(db, {}, receiver.url);
      const internal = await submit(db, {}, "http://10.1.2.3:8080/hook");
      await viaProxy.runOnce();
      expect(await viaProxy.deliverDueOnce()).toBe(2);
      expect(await settled(db, ok.job_id)).toMatchObject({ status: "delivered", attempts: 1 });
      expect(receiver.received.map((r) => r.headers["webhook-id"])).toEqual([ok.job_id]);
      expect(proxy.connects).toEqual([new URL(receiver.url).host]);
      expect((await settled(db, internal.job_id)).lastError).toMatch(/^refused: callback target 10\.1\.2\.3 is private/);

      const denied = await submit(db, {}, receiver.url);
      await viaRefusing.runOnce();
      expect(await viaRefusing.deliverDueOnce()).toBe(1);
      expect(await settled(db, denied.job_id)).toMatchObject({
        status: "failed",
        attempts: 1,
        lastError: "refused: the egress proxy answered 403 to CONNECT",
      });
      expect(refusing.connects).toEqual([new URL(receiver.url).host]);
      expect(receiver.received).toHaveLength(1);
    } finally {
      await viaProxy.stop({ graceSeconds: 1 });
      await viaRefusing.stop({ graceSeconds: 1 });
      await closeAll([receiver, proxy, refusing]);
    }
  });
});

describe("worker logs leak nothing", () => {
  const TEXT = "ALICE-CONFIDENTIAL-INVOICE-TEXT";
  const TOKEN = "token=SECRET-0b5e";

  test("a refused completion, a failing and a redirected callback, a database error: no text, no token, no parameter", async ({
    database: { db },
  }) => {
    const { logger, records } = capturingLogger();
    // Echoes the client's text back with a NUL: PostgreSQL refuses it in jsonb.
    const echo = definePipeline({ name: "echo", run: (req) => ({ text: `${req.context.texts?.[0]}\u0000` }) });
    const failing = await startReceiver((res) => res.writeHead(500).end(`no, and here is your ${TEXT}`));
    const redirect = await startReceiver((res) => res.writeHead(302, { location: `/elsewhere?${TOKEN}2` }).end());
    const receivers: Receiver[] = [failing, redirect];
    const worker: Worker = createWorker({
      db,
      pipelines: [...builtinPipelines(), echo],
      config: testConfig({ concurrency: 4, callback: { maxAttempts: 1 } }),
      logger,
    });
    try {
      const alice = await submit(db, { use_case: "echo", ix_client_id: "alice", context: { texts: [TEXT] } }, `${failing.url}?${TOKEN}`);
      const bob = await submit(db, { ix_client_id: "bob" }, `${redirect.url}?${TOKEN}`);
      expect(await worker.runOnce()).toBe(2);
      expect((await jobs.get(db, alice.job_id))?.response?.error).toBe("response could not be stored: 22P05 unsupported Unicode escape sequence");
      expect((await jobs.get(db, bob.job_id))?.status).toBe("done");
      expect(await worker.deliverDueOnce()).toBe(2);

      // A database error whose Drizzle message repeats every parameter (here the response, holding the client's text).
      let open = () => {};
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const gated = definePipeline({
        name: "gated",
        run: async (req) => {
          await gate;
          return { text: req.context.texts?.[0] ?? "" };
        },
      });
      const second = createWorker({ db, pipelines: [gated], config: testConfig(), logger });
      await submit(db, { use_case: "gated", ix_client_id: "carol", context: { texts: [`${TEXT}-carol`] } });
      const run = second.runOnce();
      await waitFor("carol's job to be claimed", async () => (await db.execute(sql`select 1 from ix_jobs where status = 'running'`)).rows.length === 1);
      await db.execute(sql`alter table ix_jobs rename column response to response_gone`);
      open();
      await run;
      await db.execute(sql`alter table ix_jobs rename column response_gone to response`);
      await second.stop({ graceSeconds: 1 });

      const text = JSON.stringify(records);
      expect(text).not.toContain(TEXT);
      expect(text).not.toContain("SECRET-0b5e");
      expect(text).not.toContain("params:");
      const byMsg = (msg: string) => records.filter((r) => r.msg === msg);
      expect(byMsg("response could not be stored as the pipeline made it")).toMatchObject([
        { job_id: alice.job_id, reason: "22P05 unsupported Unicode escape sequence", stored_as_error: true },
      ]);
      expect(byMsg("callback failed for good").map((r) => r.callback_target).sort()).toEqual([failing.url, redirect.url].sort());
      expect(byMsg("callback failed for good").find((r) => r.callback_target === failing.url)?.error).toBe("HTTP 500");
      // The row keeps the start of the receiver's answer for the operator; only the log goes without it.
      expect((await callbackState(db, alice.job_id))?.lastError).toBe(`HTTP 500: no, and here is your ${TEXT}`);
      const relative = `${new URL(redirect.url).origin}/elsewhere`;
      expect(byMsg("callback failed for good").find((r) => r.callback_target === redirect.url)?.error).toBe(
        `HTTP 302 redirect to ${relative} not followed`,
      );
      expect(byMsg("storing responses failed; the jobs stay running for the rescuer")[0]).toMatchObject({
        err: { message: "database query failed", statement: "update ix_jobs", cause: { code: "42703" } },
      });
      // The stored error, visible to operators, quotes no token either.
      expect((await callbackState(db, bob.job_id))?.lastError).toBe(`HTTP 302 redirect to ${relative} not followed`);
    } finally {
      await worker.stop({ graceSeconds: 1 });
      await closeAll(receivers);
    }
  });
});

describe("a row that is not a valid Job in a claim", () => {
  test("ends error alone; the jobs claimed with it run", async ({ database: { db } }) => {
    const { logger, records } = capturingLogger();
    const good = await Promise.all([0, 1, 2].map(() => submit(db, { ix_client_id: "bob" })));
    const poison = await submit(db, { ix_client_id: "alice" });
    await db.execute(sql`update ix_jobs set request = jsonb_set(request, '{context}', '{"texts": 7}') where job_id = ${poison.job_id}`);
    const worker = createWorker({ db, pipelines: builtinPipelines(), config: testConfig({ concurrency: 8 }), logger });
    expect(await worker.runOnce()).toBe(3);
    for (const job of good) expect((await jobs.get(db, job.job_id))?.status).toBe("done");
    const [row] = await db.select().from(ixJobs).where(sql`${ixJobs.jobId} = ${poison.job_id}`);
    expect(row?.status).toBe("error");
    expect(row?.response?.error).toBe(
      "job cannot run: its stored row is not a valid job (request.context.texts: Invalid input: expected array, received number)",
    );
    expect(records.filter((r) => r.msg === "job row is not a valid job")).toMatchObject([
      { job_id: poison.job_id, client_id: "alice", outcome: "ended error" },
    ]);
    await worker.stop({ graceSeconds: 1 });
  });
});
