import { startTracing } from "@ix/process";
import { jobs } from "@ix/store";
import { test } from "@ix/testing";
import { SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import { describe, expect, vi } from "vitest";
import { builtinPipelines, createWorker } from "../src/index.ts";
import { submit, testConfig } from "./fixtures/index.ts";

// The run's span (docs/OPERATIONS.md, "Traces") ends on every path, or it is never exported. The
// SDK is registered in this test file's process only, exporting to memory.

describe("the run's span", () => {
  test("a run that fails unexpectedly after its completion was stored still ends its span, as failed with the error", async ({
    database: { db },
  }) => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({ serviceName: "ix-test", exporter });
    try {
      const worker = createWorker({ db, pipelines: builtinPipelines(), config: testConfig() });
      // Recording the stored run throws: the run ends on the runner's unexpected-failure path.
      vi.spyOn(worker.metrics, "jobFinished").mockImplementation(() => {
        throw new Error("the metrics registry broke");
      });
      const job = await submit(db);
      expect(await worker.runOnce()).toBe(1);
      expect((await jobs.get(db, job.job_id))?.status).toBe("done");

      await tracing!.flush();
      const runs = exporter.getFinishedSpans().filter((span) => span.name === "ix.run extract_fields");
      expect(runs).toHaveLength(1);
      expect(runs[0]!.attributes).toMatchObject({ "ix.job_id": job.job_id, "ix.outcome": "failed" });
      expect(runs[0]!.status).toEqual({ code: SpanStatusCode.ERROR, message: "the metrics registry broke" });
    } finally {
      await tracing?.shutdown();
    }
  });
});
