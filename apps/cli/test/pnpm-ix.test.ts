import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jobs } from "@ix/store";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { REPOSITORY_ROOT } from "../src/repository.ts";
import { listeningApi, printedJob } from "./api.ts";
import type { IxResult } from "./run-ix.ts";

// `pnpm ix …` as the README tells people to run it: through pnpm's root script, from other folders.

/** Runs `pnpm <args>` in `cwd`, with no IX_ variable but `env`. */
function pnpm(args: string[], cwd: string, env: Record<string, string>): Promise<IxResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("IX_")));
  const child = spawn("pnpm", args, { cwd, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function requestIn(dir: string) {
  const request = sampleRequest();
  await writeFile(join(dir, "request.json"), JSON.stringify(request));
  return request;
}

describe("pnpm ix", () => {
  test("from a folder of the repository, a relative path means that folder's file; exit codes come through pnpm", async ({
    database: { db },
  }) => {
    const { app, env } = await listeningApi(db);
    // .ix/ is git-ignored, and a folder below it has no package.json: pnpm runs the root's script from the root.
    const dir = join(REPOSITORY_ROOT, ".ix", `cli-test-${randomBytes(4).toString("hex")}`);
    await mkdir(dir, { recursive: true });
    try {
      const request = await requestIn(dir);
      const submitted = await pnpm(["ix", "submit", "request.json"], dir, env);
      expect(submitted.code, submitted.stderr).toBe(0);
      const job = printedJob(submitted.stdout);
      expect(job.request_id).toBe(request.request_id);
      expect(await jobs.get(db, job.job_id)).toEqual(job);

      const failed = await insertJob(db, { status: "error" });
      const got = await pnpm(["ix", "get", failed.job_id], dir, env);
      expect(got.code).toBe(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await app.close();
    }
  });

  test("from outside it with --dir, and from a package's folder with -w", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    const dir = await mkdtemp(join(tmpdir(), "ix-pnpm-"));
    try {
      const request = await requestIn(dir);
      const submitted = await pnpm(["--dir", REPOSITORY_ROOT, "ix", "submit", "request.json"], dir, env);
      expect(submitted.code, submitted.stderr).toBe(0);
      expect(printedJob(submitted.stdout).request_id).toBe(request.request_id);

      const { version } = JSON.parse(await readFile(join(REPOSITORY_ROOT, "apps", "cli", "package.json"), "utf8")) as { version: string };
      const fromPackage = await pnpm(["-w", "ix", "--version"], join(REPOSITORY_ROOT, "apps", "cli"), env);
      expect(fromPackage.code, fromPackage.stderr).toBe(0);
      expect(fromPackage.stdout.trim()).toBe(version);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await app.close();
    }
  });
});
