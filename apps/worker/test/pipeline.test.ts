import { fileURLToPath } from "node:url";
import { ConfigError } from "@ix/contracts";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { definePipeline, loadPipelineModules, PipelineModuleError, PipelineRegistry, runPipeline } from "../src/index.ts";
import { runningJob } from "./fixtures/index.ts";

const log = pino({ level: "silent" });

describe("runPipeline", () => {
  it("passes parsed options and returns the result with filled metadata", async () => {
    const seen: unknown[] = [];
    const registry = new PipelineRegistry([
      definePipeline({
        name: "greet",
        input: z.object({ name: z.string(), loud: z.boolean().default(false) }),
        run: (req) => {
          seen.push(req.options);
          return { greeting: `hello ${req.options.name}` };
        },
      }),
    ]);
    const job = runningJob({ use_case: "greet", options: { name: "ix" } }, 1);
    const response = await runPipeline({ job, registry, timeoutMs: 5_000, log });
    expect(seen).toEqual([{ name: "ix", loud: false }]);
    expect(response).toMatchObject({
      use_case: "greet",
      ix_client_id: job.client_id,
      request_id: job.request_id,
      ix_id: job.ix_id,
      error: null,
      result: { greeting: "hello ix" },
      metadata: { pipeline: "greet", attempt: 2 },
    });
    expect(Date.parse(response.metadata.finished_at)).toBeGreaterThanOrEqual(Date.parse(response.metadata.started_at));
  });

  it("an unknown use_case is an error naming it and the registered ones", async () => {
    const registry = new PipelineRegistry([definePipeline({ name: "a", run: () => ({}) })]);
    const response = await runPipeline({ job: runningJob({ use_case: "nope" }), registry, timeoutMs: 5_000, log });
    expect(response.error).toBe('no pipeline is registered for use_case "nope" (registered: a)');
    expect(response.result).toBeNull();
    expect(response.metadata.pipeline).toBe("nope");
  });

  it("a thrown error becomes the response error, prefixed with the pipeline", async () => {
    const registry = new PipelineRegistry([
      definePipeline({
        name: "boom",
        run: async () => {
          throw new Error("upstream OCR said 503");
        },
      }),
    ]);
    const response = await runPipeline({ job: runningJob({ use_case: "boom" }), registry, timeoutMs: 5_000, log });
    expect(response.error).toBe('pipeline "boom" failed: upstream OCR said 503');
  });

  it.each([
    ["a string", () => "text", /returned string, expected a result object/],
    ["an array", () => [1], /returned an array, expected a result object/],
    ["a BigInt inside", () => ({ n: 1n }), /returned a result that is not JSON/],
  ])("a result that is %s becomes an error", async (_, run, message) => {
    const registry = new PipelineRegistry([{ name: "odd", run: run as never }]);
    const response = await runPipeline({ job: runningJob({ use_case: "odd" }), registry, timeoutMs: 5_000, log });
    expect(response.error).toMatch(message);
  });

  it("times out at the deadline even when the pipeline ignores its signal, and the signal fires", async () => {
    let signal: AbortSignal | undefined;
    const registry = new PipelineRegistry([
      definePipeline({
        name: "stubborn",
        run: (_req, ctx) => {
          signal = ctx.signal;
          return new Promise(() => {}); // never settles, never looks at the signal
        },
      }),
    ]);
    const response = await runPipeline({ job: runningJob({ use_case: "stubborn" }), registry, timeoutMs: 100, log });
    expect(response.error).toBe('pipeline "stubborn" timed out after 0.1 s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)');
    expect(signal?.aborted).toBe(true);
  });
});

describe("PipelineRegistry", () => {
  it("refuses a second pipeline with the same name", () => {
    const registry = new PipelineRegistry([definePipeline({ name: "a", run: () => ({}) })]);
    expect(() => registry.register(definePipeline({ name: "a", run: () => ({}) }))).toThrow('pipeline "a" is registered twice');
  });

  it("refuses a pipeline whose name is not a valid use_case", () => {
    expect(() => new PipelineRegistry([{ name: "Has Spaces", run: () => ({}) }])).toThrow(/not a pipeline: name: must match/);
  });
});

describe("loadPipelineModules", () => {
  const dir = fileURLToPath(new URL("./fixtures/pipelines/", import.meta.url));

  it("loads a module default-exporting an array, relative to the base directory", async () => {
    const loaded = await loadPipelineModules(["./echo-and-count.ts"], { baseDir: dir });
    expect(loaded.map((p) => p.name)).toEqual(["echo_texts", "count_texts"]);
  });

  it("loads by package name and by absolute path", async () => {
    const loaded = await loadPipelineModules(["@ix/worker", `${dir}echo-and-count.ts`], { baseDir: dir }).catch((e: unknown) => e);
    // @ix/worker has no default export: the error names the entry.
    expect(loaded).toBeInstanceOf(PipelineModuleError);
    // A configuration error like any bad variable, so `ix` exits 2 for it.
    expect(loaded).toBeInstanceOf(ConfigError);
    expect((loaded as Error).message).toBe(
      'invalid configuration:\n  IX_PIPELINE_MODULES: entry "@ix/worker": has no default export (export a pipeline or an array of them)',
    );
    const byPath = await loadPipelineModules([`${dir}echo-and-count.ts`, `${dir}shout.mjs`]);
    expect(byPath.map((p) => p.name)).toEqual(["echo_texts", "count_texts", "shout"]);
  });

  it.each([
    ["./not-a-pipeline.mjs", /entry "\.\/not-a-pipeline\.mjs": default export is not a pipeline: name: must match .*; run: must be a function/],
    ["./no-default.mjs", /entry "\.\/no-default\.mjs": has no default export/],
    ["./missing.ts", /entry "\.\/missing\.ts": cannot be imported/],
    ["no-such-package-ix", /entry "no-such-package-ix": cannot be imported/],
  ])("%s fails with a message naming the entry", async (specifier, message) => {
    await expect(loadPipelineModules([specifier], { baseDir: dir })).rejects.toThrow(message);
  });
});
