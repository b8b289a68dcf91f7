import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "@ix/testing";
import { jobs } from "@ix/store";
import { describe, expect } from "vitest";
import { submit, waitFor } from "./fixtures";

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url));
const napModule = fileURLToPath(new URL("./fixtures/pipelines/nap.mjs", import.meta.url));

function startWorkerProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", bin], {
    env: { PATH: process.env.PATH ?? "", IX_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, exited: once(child, "exit"), output: () => output };
}

describe("the worker process (runWorkerMain)", () => {
  test("SIGTERM: stops claiming, finishes the job in flight, exits 0", async ({ database: { db, url } }) => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: url, IX_PIPELINE_MODULES: napModule, IX_WORKER_CONCURRENCY: "1" });
    try {
      const busy = await submit(db, { use_case: "nap", options: { ms: 1500 } });
      await waitFor("the job to be claimed", async () => (await jobs.get(db, busy.job_id))?.status === "running", {
        timeoutMs: 30_000,
      });
      const queued = await submit(db, { use_case: "nap", options: { ms: 1 } });
      worker.child.kill("SIGTERM");
      const [code] = await worker.exited;
      expect(code, worker.output()).toBe(0);
      expect(await jobs.get(db, busy.job_id)).toMatchObject({ status: "done", response: { result: { napped_ms: 1500 } } });
      // Concurrency 1 kept it waiting, and after SIGTERM nothing more is claimed.
      expect((await jobs.get(db, queued.job_id))?.status).toBe("pending");
      expect(worker.output()).toContain("shutdown requested");
    } finally {
      worker.child.kill("SIGKILL");
    }
  });

  test("a bad variable stops start-up with a message naming it", async () => {
    const worker = startWorkerProcess({ IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/none", IX_CALLBACK_SECRET: "nope" });
    const [code] = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain('IX_CALLBACK_SECRET: must start with "whsec_"');
  });

  test("without IX_POSTGRES_URL it refuses to start, naming the variable", async () => {
    const worker = startWorkerProcess({});
    const [code] = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toContain("IX_POSTGRES_URL: is required to run a worker");
  });
});
