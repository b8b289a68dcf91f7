import { connect as connectTcp, type Socket } from "node:net";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { jobs, sql } from "@ix/store";
import { sampleRequest, test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import { type CompiledIx, processTree, running, startCompiledIx } from "../src/compiled-ix.ts";

// Production runs compiled JavaScript in the process that receives the signals
// (README: Running in production). A container runtime or systemd sends
// SIGTERM to exactly one PID: that process must drain and exit 0 by itself.

const NAP = fileURLToPath(new URL("./fixtures/nap.mjs", import.meta.url));

/** Sends the first `split` bytes of a POST /jobs, returning the socket and a sender for the rest. */
async function partialSubmission(port: number, body: string, split: number) {
  const socket: Socket = connectTcp(port, "127.0.0.1");
  await once(socket, "connect");
  let response = "";
  socket.on("data", (chunk: Buffer) => (response += chunk.toString()));
  const head = `POST /jobs HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.write(head + body.slice(0, split));
  return {
    /** Sends the rest; resolves with what came back once the server has closed the connection. */
    finish: async () => {
      // Not end(): a client that half-closes has its request aborted by Node's HTTP server.
      socket.write(body.slice(split));
      await once(socket, "close");
      return response;
    },
    destroy: () => socket.destroy(),
  };
}

describe("production: node apps/cli/dist/main.js api | worker", () => {
  test("SIGTERM to exactly the ix api and ix worker PIDs: each drains its work in flight, exits 0, and leaves no process", async ({
    database: { db, url },
  }) => {
    const started: CompiledIx[] = [];
    try {
      const worker = startCompiledIx(["worker"], { IX_POSTGRES_URL: url, IX_PIPELINE_MODULES: NAP, IX_WORKER_CONCURRENCY: "1", IX_LOG_LEVEL: "info" });
      started.push(worker);
      await worker.waitForLine("the worker's start", (line) => line.msg === "worker starting");
      // The API accepts only use_cases a registered worker serves.
      await waitFor("the worker to register", async () => (await db.execute(sql`select 1 from ix_workers`)).rows.length > 0);

      const api = startCompiledIx(["api"], { IX_POSTGRES_URL: url, IX_API_PORT: "0", IX_LOG_LEVEL: "info" });
      started.push(api);
      const listening = await api.waitForLine("ix api listening", (line) => line.msg === "ix api listening");
      const port = Number(new URL(String(listening.url)).port);

      // The worker's job in flight: a nap that is still running when SIGTERM arrives.
      const { job: nap } = await jobs.insertPending(db, { request: sampleRequest({ use_case: "nap", options: { ms: 1500 } }) });
      await waitFor("the nap to be claimed", async () => (await jobs.get(db, nap.job_id))?.status === "running");
      // The API's request in flight: its headers are in, its body is not.
      const body = JSON.stringify(sampleRequest());
      const submission = await partialSubmission(port, body, 10);
      try {
        await api.waitForLine("the submission to arrive", (line) => line.msg === "incoming request");
        const trees = [processTree(worker.pid), processTree(api.pid)].flat();

        process.kill(worker.pid, "SIGTERM");
        process.kill(api.pid, "SIGTERM");
        await worker.waitForLine("the worker's shutdown", (line) => line.msg === "shutdown requested");
        await api.waitForLine("the API's shutdown", (line) => line.msg === "shutdown requested");
        // Draining: the API still answers the request it had begun.
        expect(running(api.pid)).toBe(true);
        const response = await submission.finish();
        expect(response, api.output()).toMatch(/^HTTP\/1\.1 201 /);

        const [apiCode] = await api.exited;
        const [workerCode] = await worker.exited;
        expect(apiCode, api.output()).toBe(0);
        expect(workerCode, worker.output()).toBe(0);
        expect(api.lines.map((line) => line.msg)).toContain("ix api stopped");
        // The worker finished its nap before exiting, and claimed nothing after the signal.
        expect(await jobs.get(db, nap.job_id)).toMatchObject({ status: "done", response: { result: { napped_ms: 1500 } } });
        expect(trees.filter(running)).toEqual([]);
      } finally {
        submission.destroy();
      }
    } finally {
      for (const ix of started) if (running(ix.pid)) ix.child.kill("SIGKILL");
    }
  });
});
