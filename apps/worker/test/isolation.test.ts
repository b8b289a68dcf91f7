import { fileURLToPath } from "node:url";
import { threadId as mainThreadId } from "node:worker_threads";
import { ConfigError, type Job } from "@ix/contracts";
import { jobs, type Database } from "@ix/store";
import { test } from "@ix/testing";
import { describe, expect, it } from "vitest";
import {
  type AnyPipeline,
  builtinPipelines,
  createWorker,
  DEFAULT_WORKER_CONFIG,
  definePipeline,
  loadPipelineModules,
  parseWorkerEnv,
  type Worker,
  type WorkerConfigOverrides,
  workerConfigFromEnv,
} from "../src/index.ts";
import { capturingLogger, request, submit, testConfig, waitFor } from "./fixtures/index.ts";

const probes = fileURLToPath(new URL("./fixtures/pipelines/thread-probes.ts", import.meta.url));
const mainOnly = fileURLToPath(new URL("./fixtures/pipelines/main-thread-only.mjs", import.meta.url));

async function stored(db: Database, job: Job): Promise<Job> {
  return waitFor(`job ${job.request.use_case} (${job.job_id}) to end`, async () => {
    const current = await jobs.get(db, job.job_id);
    return current?.status === "done" || current?.status === "error" ? current : undefined;
  });
}

/** A started worker with thread isolation, the probe module, the built-ins and `extra` pipelines registered in code. */
async function threadWorker(db: Database, overrides: WorkerConfigOverrides, extra: AnyPipeline[] = []) {
  const { logger, records } = capturingLogger();
  const worker = createWorker({
    db,
    pipelines: [...builtinPipelines(), ...(await loadPipelineModules([probes])), ...extra],
    // One run per job: these tests are about how a run ends (a timeout is retryable, test/job-control.test.ts).
    config: testConfig({ isolation: "thread", maxAttempts: 1, ...overrides }),
    logger,
  });
  await worker.start();
  return { worker, records };
}

async function withWorker<T>(made: { worker: Worker }, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    await made.worker.stop({ graceSeconds: 5 });
  }
}

describe("thread isolation", () => {
  test("built-in and module pipelines run in a pipeline thread; pipelines registered in code run inline", async ({ database: { db } }) => {
    const inCode = definePipeline({ name: "in_code", run: () => ({ threadId: mainThreadId }) });
    const made = await threadWorker(db, { concurrency: 2 }, [inCode]);
    await withWorker(made, async () => {
      const where = await stored(db, await submit(db, { use_case: "where" }));
      expect(where.response?.result).toMatchObject({ isMainThread: false });
      expect(where.response?.result?.threadId).not.toBe(mainThreadId);
      const extracted = await stored(db, await submit(db));
      expect(extracted.response).toMatchObject({ error: null, result: { fields: { total: [{ value: "10.00", text_index: 0, start: 18, end: 23 }] } } });
      const inline = await stored(db, await submit(db, { use_case: "in_code" }));
      expect(inline.response?.result).toEqual({ threadId: mainThreadId });
      // Options are validated inside the thread, with the same message as inline.
      const invalid = await stored(db, await submit(db, { options: { fields: { total: 7 } } }));
      expect(invalid.response?.error).toMatch(/^invalid options for pipeline "extract_fields": options\.fields\.total: /);
    });
  });

  test.for(["spin", "hang"])(
    "a run that ignores its signal (%s) keeps its slot past the timeout until its thread is terminated, then the slot serves the next job",
    async (useCase, { database: { db } }) => {
      const made = await threadWorker(db, { concurrency: 1, pipelineTimeoutSeconds: 0.3, killGraceSeconds: 2 });
      await withWorker(made, async () => {
        const stubborn = await submit(db, { use_case: useCase });
        await waitFor("the stubborn job to be claimed", async () => (await jobs.get(db, stubborn.job_id))?.status === "running");
        const next = await submit(db, { use_case: "where" });
        const timedOut = await stored(db, stubborn);
        expect(timedOut.status).toBe("error");
        expect(timedOut.response?.error).toBe(`pipeline "${useCase}" timed out after 0.3 s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)`);
        // Stored at the timeout, but the run has not stopped: its slot is still taken and nothing else was claimed.
        expect(made.worker.runningPipelines).toBe(1);
        expect((await jobs.get(db, next.job_id))?.status).toBe("pending");

        const served = await stored(db, next);
        expect(served.response?.error ?? null, JSON.stringify(made.records.slice(-5))).toBeNull();
        expect(served.status).toBe("done");
        const killed = made.records.find((r) => r.job_id === stubborn.job_id && String(r.msg).includes("its thread is terminated"));
        expect(killed, "the kill is logged for the stubborn job").toBeDefined();
        // The next job started only after the kill.
        expect(Date.parse(served.response?.metadata.started_at ?? "")).toBeGreaterThanOrEqual(Number(killed?.time));
        await waitFor("the slot to be free again", () => made.worker.runningPipelines === 0);
        // The terminated thread is counted for operators (docs/OPERATIONS.md).
        const restarts = await made.worker.metrics.registry.getSingleMetric("ix_worker_pipeline_thread_restarts_total")?.get();
        expect(restarts?.values).toEqual([{ labels: { reason: "terminated" }, value: 1 }]);
      });
    },
  );

  test("a run in a pipeline thread gets its trace context on the pipeline's context", async ({ database: { db } }) => {
    const made = await threadWorker(db, { concurrency: 1 });
    await withWorker(made, async () => {
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const { job } = await jobs.insertPending(db, {
        request: request({ use_case: "which_trace" }),
        trace: { traceparent, tracestate: "congo=t61rcWkgMzE" },
      });
      const untraced = await submit(db, { use_case: "which_trace" });
      // No SDK in this process: the run's span is the API's no-op, which carries the submitter's context on.
      expect((await stored(db, job)).response?.result).toEqual({ traceparent, tracestate: "congo=t61rcWkgMzE", isMainThread: false });
      expect((await stored(db, untraced)).response?.result).toEqual({ traceparent: null, tracestate: null, isMainThread: false });
    });
  });

  test("a run that honours its signal stops at the timeout, long before the kill grace, and frees its slot", async ({ database: { db } }) => {
    const made = await threadWorker(db, { concurrency: 1, pipelineTimeoutSeconds: 0.3, killGraceSeconds: 600 });
    await withWorker(made, async () => {
      const slow = await submit(db, { use_case: "obey", options: { ms: 600_000 } });
      const next = await submit(db, { use_case: "where" });
      expect((await stored(db, slow)).response?.error).toBe('pipeline "obey" timed out after 0.3 s (IX_PIPELINE_REQUEST_TIMEOUT_SECONDS)');
      // The abort reached the thread: the slot freed without waiting 600 s for the kill.
      expect((await stored(db, next)).status).toBe("done");
      expect(made.records.some((r) => String(r.msg).includes("its thread is terminated"))).toBe(false);
    });
  });

  test("a result over IX_MAX_RESULT_BYTES ends error naming both sizes, in a thread and inline", async ({ database: { db } }) => {
    const inlineBloat = definePipeline({ name: "inline_bloat", run: () => ({ blob: "é".repeat(2_000) }) });
    const made = await threadWorker(db, { concurrency: 2, maxResultBytes: 2_048 }, [inlineBloat]);
    await withWorker(made, async () => {
      const big = await stored(db, await submit(db, { use_case: "bloat", options: { bytes: 5_000 } }));
      expect(big.status).toBe("error");
      expect(big.response?.error).toBe(
        'pipeline "bloat" returned a result of 5011 bytes (serialized JSON), more than the 2048 bytes IX_MAX_RESULT_BYTES allows',
      );
      // Two bytes per "é": the bound counts UTF-8 bytes, not characters.
      const inline = await stored(db, await submit(db, { use_case: "inline_bloat" }));
      expect(inline.response?.error).toBe(
        'pipeline "inline_bloat" returned a result of 4011 bytes (serialized JSON), more than the 2048 bytes IX_MAX_RESULT_BYTES allows',
      );
      const fits = await stored(db, await submit(db, { use_case: "bloat", options: { bytes: 2_000 } }));
      expect(fits.status).toBe("done");
    });
  });

  test("a thread's log records reach the worker's logger with the job's bindings, at its level", async ({ database: { db } }) => {
    const made = await threadWorker(db, { concurrency: 1 });
    await withWorker(made, async () => {
      const job = await stored(db, await submit(db, { use_case: "chatty" }));
      const record = await waitFor("the thread's log record", () => made.records.find((r) => r.msg === "read the document"));
      expect(record).toMatchObject({ level: 30, pages: 3, job_id: job.job_id, use_case: "chatty", attempt: 1 });
      expect(made.records.find((r) => r.msg === "a detail")).toMatchObject({ level: 20, job_id: job.job_id });
    });
  });

  test("stop() after its grace terminates a run that ignores its signal and leaves the job running for the rescuer", async ({ database: { db } }) => {
    const made = await threadWorker(db, { concurrency: 1, pipelineTimeoutSeconds: 600 });
    const job = await submit(db, { use_case: "spin" });
    await waitFor("the spin to be claimed", async () => (await jobs.get(db, job.job_id))?.status === "running");
    expect(await made.worker.stop({ graceSeconds: 0.2 })).toEqual({ abandonedJobs: 1 });
    // stop() resolved after the pool's threads exited; the spin's slot is released as its run is seen to stop.
    await waitFor("the spin's slot to be released", () => made.worker.runningPipelines === 0, { timeoutMs: 2_000 });
    expect(await jobs.get(db, job.job_id)).toMatchObject({ status: "running", response: null });
  });

  test("stop() while start() is still loading the first thread: start() resolves quietly and stop() completes", async ({ database: { db } }) => {
    const worker = createWorker({ db, pipelines: builtinPipelines(), config: testConfig({ isolation: "thread", concurrency: 1 }) });
    const starting = worker.start();
    expect(await worker.stop({ graceSeconds: 1 })).toEqual({ abandonedJobs: 0 });
    await expect(starting).resolves.toBeUndefined();
  });

  test("a pipeline module that cannot load in a thread stops start-up with its error", async ({ database: { db } }) => {
    const worker = createWorker({
      db,
      pipelines: await loadPipelineModules([mainOnly]),
      config: testConfig({ isolation: "thread", concurrency: 1 }),
    });
    await expect(worker.start()).rejects.toThrow("this module only loads in the main thread");
  });

  test("inline isolation runs module pipelines on the worker's own thread", async ({ database: { db } }) => {
    const worker = createWorker({ db, pipelines: await loadPipelineModules([probes]), config: testConfig({ isolation: "inline" }) });
    await worker.runOnce();
    const job = await submit(db, { use_case: "where" });
    await worker.runOnce();
    expect((await jobs.get(db, job.job_id))?.response?.result).toEqual({ threadId: mainThreadId, isMainThread: mainThreadId === 0 });
  });
});

describe("isolation settings", () => {
  it("default to threads, a 5 s kill grace and 1 MiB results", () => {
    expect(workerConfigFromEnv(parseWorkerEnv({}))).toMatchObject({ isolation: "thread", killGraceSeconds: 5, maxResultBytes: 1_048_576 });
    expect(DEFAULT_WORKER_CONFIG).toMatchObject({ isolation: "thread", killGraceSeconds: 5, maxResultBytes: 1_048_576 });
  });

  it("are read from the environment", () => {
    const config = workerConfigFromEnv(
      parseWorkerEnv({ IX_PIPELINE_ISOLATION: "inline", IX_PIPELINE_KILL_GRACE_SECONDS: "0.5", IX_MAX_RESULT_BYTES: "65536" }),
    );
    expect(config).toMatchObject({ isolation: "inline", killGraceSeconds: 0.5, maxResultBytes: 65_536 });
  });

  it("refuse bad values, naming each variable", () => {
    let error: unknown;
    try {
      parseWorkerEnv({ IX_PIPELINE_ISOLATION: "process", IX_PIPELINE_KILL_GRACE_SECONDS: "-1", IX_MAX_RESULT_BYTES: "12" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
      "IX_MAX_RESULT_BYTES",
      "IX_PIPELINE_ISOLATION",
      "IX_PIPELINE_KILL_GRACE_SECONDS",
    ]);
  });
});
