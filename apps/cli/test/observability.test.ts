import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type ApiApp, apiConfig, buildApp } from "@ix/api";
import type { Job } from "@ix/contracts";
import { startTracing } from "@ix/process";
import { connect, type Database, jobs } from "@ix/store";
import { test, waitFor } from "@ix/testing";
import { builtinPipelines, createWorker, definePipeline, type Worker, workerConfig, type WorkerConfigOverrides } from "@ix/worker";
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import { describe, expect } from "vitest";

// The operator surface end to end (docs/OPERATIONS.md): a real API and a real worker on the test's
// database, callbacks to real HTTP servers, metrics read over HTTP as Prometheus would.

/** A callback receiver on a real socket, answering `status`; keeps each request's headers. */
async function receiver(status: number) {
  const received: IncomingHttpHeaders[] = [];
  const server = createServer((request, response: ServerResponse) => {
    request.resume();
    request.on("end", () => {
      received.push(request.headers);
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Reports what a pipeline saw of its trace: the traceparent on its context, and the span active while it ran. */
const traceProbe = definePipeline({
  name: "trace_probe",
  run: (_request, context) => ({ traceparent: context.traceparent, tracestate: context.tracestate, active_span_id: trace.getActiveSpan()?.spanContext().spanId ?? null }),
});

const failing = definePipeline({
  name: "always_fails",
  run: () => {
    throw new Error("no such invoice");
  },
});

async function running(db: Database, overrides: WorkerConfigOverrides = {}): Promise<{ worker: Worker; app: ApiApp; base: string }> {
  const worker = createWorker({
    db,
    pipelines: [...builtinPipelines(), traceProbe, failing],
    config: workerConfig({
      isolation: "inline",
      pollIntervalSeconds: 0.2,
      ...overrides,
      callback: { allowedHosts: ["127.0.0.1"], retryBaseSeconds: 0.05, retryMaxSeconds: 0.1, ...overrides.callback },
    }),
  });
  // Registers its use_cases before the API is asked to accept them.
  await worker.start();
  const app = await buildApp({ db, config: apiConfig({ callbackAllowedHosts: ["127.0.0.1"] }) });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return { worker, app, base };
}

async function submit(base: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Job> {
  const response = await fetch(`${base}/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ ix_client_id: "billing-svc", context: { texts: ["Invoice 42, total 10.00 EUR"] }, options: {}, ...body }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json()) as Job;
}

async function finished(db: Database, jobId: string): Promise<Job> {
  return waitFor(`job ${jobId} to finish`, async () => {
    const job = await jobs.get(db, jobId);
    return job?.finished_at ? job : undefined;
  });
}

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN_ID}-01`;

describe("traces", () => {
  test("POST /jobs with a traceparent: the run is a span in that trace, the pipeline runs in it, the callback carries it", async ({
    database: { db },
  }) => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({ serviceName: "ix-test", exporter });
    const hook = await receiver(204);
    const { worker, app, base } = await running(db);
    try {
      const submitted = await submit(
        base,
        { use_case: "trace_probe", request_id: "traced-1", callback_url: hook.url },
        { traceparent: TRACEPARENT, tracestate: "vendor=abc" },
      );
      const job = await finished(db, submitted.job_id);
      await waitFor("the callback", () => hook.received.length > 0);
      // Spans end after what the test can see: the run's once its completion is stored, the delivery's once
      // the worker has read the receiver's answer.
      const spans = await waitFor("the run's and the callback's spans to end", async () => {
        await tracing?.flush();
        const ended = exporter.getFinishedSpans().map((span) => span.name);
        return ended.includes("ix.run trace_probe") && ended.includes("ix.callback") && exporter.getFinishedSpans();
      });
      const run = spans.find((span) => span.name === "ix.run trace_probe");
      expect(run, spans.map((s) => s.name).join(", ")).toBeDefined();
      expect(run!.spanContext().traceId).toBe(TRACE_ID);
      expect(run!.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
      expect(run!.parentSpanContext?.isRemote).toBe(true);
      expect(run!.attributes).toMatchObject({
        "ix.job_id": submitted.job_id,
        "ix.client_id": "billing-svc",
        "ix.attempt": 1,
        "ix.outcome": "done",
      });

      // The pipeline got the run span's own traceparent, and ran inside its context.
      const runParent = `00-${TRACE_ID}-${run!.spanContext().spanId}-01`;
      expect(job.response?.result).toEqual({ traceparent: runParent, tracestate: "vendor=abc", active_span_id: run!.spanContext().spanId });

      // The callback request carries a traceparent of the delivery's span, in the same trace.
      const delivery = spans.find((span) => span.name === "ix.callback");
      expect(delivery?.spanContext().traceId).toBe(TRACE_ID);
      expect(delivery?.attributes).toMatchObject({ "ix.job_id": submitted.job_id, "ix.callback_outcome": "delivered", "http.response.status_code": 204 });
      expect(hook.received[0]?.traceparent).toBe(`00-${TRACE_ID}-${delivery!.spanContext().spanId}-01`);
      expect(hook.received[0]?.tracestate).toBe("vendor=abc");
    } finally {
      await app.close();
      await worker.stop({ graceSeconds: 5 });
      await hook.close();
      await tracing?.shutdown();
    }
  });

  test("without an SDK the pipeline and the callback get the submitter's traceparent unchanged; a bad one is ignored", async ({ database: { db } }) => {
    const hook = await receiver(204);
    const { worker, app, base } = await running(db);
    try {
      const plain = await submit(base, { use_case: "trace_probe", request_id: "untraced", callback_url: hook.url });
      const traced = await submit(base, { use_case: "trace_probe", request_id: "traced-2", callback_url: hook.url }, { traceparent: TRACEPARENT });
      // An invalid traceparent is ignored, as W3C Trace Context asks: the job is accepted, without one.
      const mangled = await submit(base, { use_case: "trace_probe", request_id: "mangled", callback_url: hook.url }, { traceparent: "00-xyz-01" });
      for (const job of [plain, traced, mangled]) await finished(db, job.job_id);
      await waitFor("three callbacks", () => hook.received.length === 3);

      // No SDK, no context manager: no span is active, but the pipeline still gets the submitter's traceparent.
      expect((await jobs.get(db, traced.job_id))?.response?.result).toEqual({ traceparent: TRACEPARENT, tracestate: null, active_span_id: null });
      expect((await jobs.get(db, plain.job_id))?.response?.result).toEqual({ traceparent: null, tracestate: null, active_span_id: null });
      expect((await jobs.get(db, mangled.job_id))?.response?.result).toMatchObject({ traceparent: null });
      const byJob = new Map(hook.received.map((headers) => [headers["webhook-id"], headers.traceparent]));
      expect(byJob.get(traced.job_id)).toBe(TRACEPARENT);
      expect(byJob.get(plain.job_id)).toBeUndefined();
      expect(byJob.get(mangled.job_id)).toBeUndefined();
    } finally {
      await app.close();
      await worker.stop({ graceSeconds: 5 });
      await hook.close();
    }
  });
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and exactly these labels; undefined when absent. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted)?.value;
}

async function scrape(url: string): Promise<Sample[]> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

describe("metrics", () => {
  test("after real jobs: the API's counts by status × use_case and HTTP requests, the worker's outcomes, histograms and deliveries", async ({
    database: { db },
  }) => {
    const ok = await receiver(204);
    const broken = await receiver(500);
    const { worker, app, base } = await running(db, { concurrency: 2, metrics: { host: "127.0.0.1", port: 0 }, callback: { maxAttempts: 1 } });
    try {
      const done: Job[] = [];
      const fields = { fields: { total: "\\d+\\.\\d{2}" } };
      for (let i = 0; i < 3; i++) done.push(await submit(base, { use_case: "extract_fields", request_id: `ok-${i}`, options: fields, callback_url: ok.url }));
      const failed = await submit(base, { use_case: "always_fails", request_id: "bad-1", callback_url: broken.url });
      // Due tomorrow: stays pending.
      await submit(base, { use_case: "extract_fields", request_id: "later", options: fields, run_at: new Date(Date.now() + 86_400_000).toISOString() });
      for (const job of [...done, failed]) await finished(db, job.job_id);
      await waitFor("every callback settled", async () => {
        const settled = await Promise.all([...done, failed].map(async (job) => (await jobs.get(db, job.job_id))?.callback_status));
        return settled.every((status) => status === "delivered" || status === "failed");
      });

      const api = await scrape(`${base}/metrics`);
      expect(sampleValue(api, "ix_metrics_database_up")).toBe(1);
      expect(sampleValue(api, "ix_jobs", { status: "done", use_case: "extract_fields" })).toBe(3);
      expect(sampleValue(api, "ix_jobs", { status: "error", use_case: "always_fails" })).toBe(1);
      expect(sampleValue(api, "ix_jobs", { status: "pending", use_case: "extract_fields" })).toBe(1);
      expect(sampleValue(api, "ix_jobs_scheduled", { use_case: "extract_fields" })).toBe(1);
      expect(sampleValue(api, "ix_jobs", { status: "running", use_case: "extract_fields" })).toBeUndefined();
      expect(sampleValue(api, "ix_callbacks_due")).toBe(0);
      expect(sampleValue(api, "ix_workers_live", { use_case: "extract_fields" })).toBe(1);
      expect(sampleValue(api, "ix_workers_live", { use_case: "trace_probe" })).toBe(1);
      expect(sampleValue(api, "ix_http_requests_total", { method: "POST", route: "/jobs", status: "201" })).toBe(5);
      expect(sampleValue(api, "ix_http_request_duration_seconds_count", { method: "POST", route: "/jobs" })).toBe(5);
      // A route pattern, never a URL: a miss is counted as unmatched, whatever its path.
      await fetch(`${base}/jobs/${done[0]!.job_id}`);
      await fetch(`${base}/no/such/${done[0]!.job_id}`);
      const again = await scrape(`${base}/metrics`);
      expect(sampleValue(again, "ix_http_requests_total", { method: "GET", route: "/jobs/:job_id", status: "200" })).toBe(1);
      expect(sampleValue(again, "ix_http_requests_total", { method: "GET", route: "unmatched", status: "404" })).toBe(1);
      expect(sampleValue(again, "ix_http_requests_total", { method: "GET", route: "/metrics", status: "200" })).toBe(1);
      expect(again.some((s) => Object.values(s.labels).some((v) => v.includes(done[0]!.job_id)))).toBe(false);

      expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const own = await scrape(worker.metricsUrl!);
      expect(sampleValue(own, "ix_job_outcomes_total", { use_case: "extract_fields", outcome: "done" })).toBe(3);
      expect(sampleValue(own, "ix_job_outcomes_total", { use_case: "always_fails", outcome: "error" })).toBe(1);
      expect(sampleValue(own, "ix_job_run_seconds_count", { use_case: "extract_fields" })).toBe(3);
      // Each run took well under a minute: all three are in the 60 s bucket and in +Inf.
      expect(sampleValue(own, "ix_job_run_seconds_bucket", { use_case: "extract_fields", le: "60" })).toBe(3);
      expect(sampleValue(own, "ix_job_run_seconds_bucket", { use_case: "extract_fields", le: "+Inf" })).toBe(3);
      expect(sampleValue(own, "ix_job_wait_seconds_count", { use_case: "extract_fields" })).toBe(3);
      expect(sampleValue(own, "ix_callback_deliveries_total", { outcome: "delivered" })).toBe(3);
      expect(sampleValue(own, "ix_callback_deliveries_total", { outcome: "failed" })).toBe(1);
      expect(sampleValue(own, "ix_callback_delivery_seconds_count")).toBe(4);
      expect(sampleValue(own, "ix_worker_slots")).toBe(2);
      expect(sampleValue(own, "ix_worker_slots_busy")).toBe(0);
      expect(sampleValue(own, "ix_worker_claim_seconds_count")).toBeGreaterThanOrEqual(1);
      expect(sampleValue(own, "ix_worker_completion_seconds_count")).toBeGreaterThanOrEqual(1);
      // Node's own figures, event-loop delay among them.
      expect(sampleValue(own, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0);

      expect((await fetch(worker.metricsUrl!.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      await app.close();
      await worker.stop({ graceSeconds: 5 });
      await Promise.all([ok.close(), broken.close()]);
    }
  });

  test("/metrics still answers when the database is away, saying so", async ({ database }) => {
    // A pool on the test's database that is then closed: every query fails at once.
    const gone = connect(database.url, { max: 1 });
    const blind = await buildApp({ db: gone, config: apiConfig() });
    await gone.close();
    try {
      const samples = parseExposition((await blind.inject({ method: "GET", url: "/metrics" })).body);
      expect(sampleValue(samples, "ix_metrics_database_up")).toBe(0);
      expect(samples.some((s) => s.name === "ix_jobs")).toBe(false);
      // Gauges without labels too: no 0 standing in for a figure the database did not give.
      expect(samples.some((s) => s.name === "ix_callbacks_due" || s.name === "ix_callbacks_oldest_due_seconds")).toBe(false);
      expect(samples.some((s) => s.name === "process_cpu_user_seconds_total")).toBe(true);
    } finally {
      await blind.close();
    }
  });
});
