import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "@ix/provision";
import { jobs } from "@ix/store";
import { test, waitFor } from "@ix/testing";
import { describe, expect, it } from "vitest";
import { REPOSITORY_ROOT } from "../src/repository.ts";
import { childEnv, runIx } from "./run-ix.ts";

// The README's "Writing a pipeline" is what a new user follows in a fresh clone:
// its example must be the file the clone has, and the command it gives must run it.

/** The TypeScript example in the README's "Writing a pipeline" section. */
function readmePipeline(readme: string): string {
  const section = readme.slice(readme.indexOf("## Writing a pipeline"));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  if (!block?.[1]) throw new Error('the README has no TypeScript example under "Writing a pipeline"');
  return block[1];
}

/** Whether any process of the process group `pgid` is still running. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("README: writing a pipeline, in a clone", () => {
  it("the example is pipelines/word-count.ts, word for word", async () => {
    const readme = await readFile(join(REPOSITORY_ROOT, "README.md"), "utf8");
    expect(readmePipeline(readme)).toBe(await readFile(join(REPOSITORY_ROOT, "pipelines", "word-count.ts"), "utf8"));
  });

  test("IX_PIPELINE_MODULES=./pipelines/word-count.ts pnpm start runs word_count jobs, and Ctrl-C stops all of it", async ({
    database: { db, url },
  }) => {
    const port = await freePort();
    // Its own process group, so the test can send Ctrl-C's SIGINT to every process of it, as a terminal does.
    const child = spawn("pnpm", ["start"], {
      cwd: REPOSITORY_ROOT,
      env: childEnv({ IX_PIPELINE_MODULES: "./pipelines/word-count.ts", IX_POSTGRES_URL: url, IX_API_PORT: String(port), IX_LOG_LEVEL: "warn" }),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const pgid = child.pid!;
    try {
      await waitFor("the API to answer", () => fetch(`http://127.0.0.1:${port}/healthz`).then((res) => res.ok), { timeoutMs: 60_000 });
      const submitted = await fetch(`http://127.0.0.1:${port}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          use_case: "word_count",
          ix_client_id: "demo",
          request_id: "wc-1",
          context: { texts: ["a few words"] },
          options: { min_length: 2 },
        }),
      });
      expect(submitted.status, output).toBe(201);
      const { job_id } = (await submitted.json()) as { job_id: string };
      const done = await waitFor("the word_count job to end", async () => {
        const job = await jobs.get(db, job_id);
        return job?.status !== "pending" && job?.status !== "running" && job;
      });
      expect(done, output).toMatchObject({ status: "done", response: { error: null, result: { count: 2 } } });

      const exited = once(child, "exit");
      process.kill(-pgid, "SIGINT");
      await exited;
      await waitFor("every process of `pnpm start` to end", () => !groupAlive(pgid), { timeoutMs: 30_000 });
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
    }
  });

  it("a pipeline module that cannot be loaded is a configuration error: ix exits 2 naming the entry", async () => {
    const result = await runIx(["worker"], { IX_POSTGRES_URL: "postgres://ix@127.0.0.1:1/none", IX_PIPELINE_MODULES: "./pipelines/missing.ts" });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('IX_PIPELINE_MODULES: entry "./pipelines/missing.ts": cannot be imported');
  });
});
