import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "@ix/testing";
import { jobs } from "@ix/store";
import { describe, expect } from "vitest";
import { createWorker, definePipeline } from "../src/index.ts";
import { submit, testConfig, waitFor } from "./fixtures/index.ts";

const script = fileURLToPath(new URL("./fixtures/worker-process.ts", import.meta.url));

describe("a worker killed with SIGKILL mid-job", () => {
  test("loses nothing: after the horizon the job is swept and finished by another worker, attempts = 1", async ({
    database: { db, url },
  }) => {
    const job = await submit(db, { use_case: "slow" });
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", script, url], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = once(child, "exit");
    try {
      await waitFor(
        "the child to claim the job",
        async () => {
          if (child.exitCode !== null) throw new Error(`worker process exited early: ${stderr}`);
          return (await jobs.get(db, job.job_id))?.status === "running";
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      child.kill("SIGKILL");
    }
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: null, signal: "SIGKILL" });
    expect(await jobs.get(db, job.job_id)).toMatchObject({ status: "running", attempts: 0, response: null });

    // Another worker, whose horizon (2 × pipeline timeout) is 0.2 s: the orphan is swept once it is that old.
    const slowNoMore = definePipeline({ name: "slow", run: () => ({ recovered: true }) });
    const rescuer = createWorker({ db, pipelines: [slowNoMore], config: testConfig({ pipelineTimeoutSeconds: 0.1 }) });
    const swept = await waitFor("the orphan to pass the horizon and be swept", async () => {
      const result = await rescuer.sweepOnce();
      return result.requeued.includes(job.job_id) ? result : undefined;
    });
    expect(swept.failed).toEqual([]);
    expect(await rescuer.runOnce()).toBe(1);
    const finished = await jobs.get(db, job.job_id);
    expect(finished).toMatchObject({ status: "done", attempts: 1, response: { error: null, result: { recovered: true } } });
    expect(finished?.response?.metadata.attempt).toBe(2);
  });
});
