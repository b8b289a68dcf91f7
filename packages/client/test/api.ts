import { randomUUID } from "node:crypto";
import { type ApiApp, type ApiConfig, apiConfig, buildApp } from "@ix/api";
import type { Job } from "@ix/contracts";
import { type Database, jobs, lifecycle, workers } from "@ix/store";

// The real API on a real socket over the test's own database: what the client is for.

export const KEY_A = "key-for-client-a-0123456789";
export const KEY_B = "key-for-client-b-9876543210";
export const KEYS = [
  { clientId: "client-a", key: KEY_A },
  { clientId: "client-b", key: KEY_B },
];

/** An API listening on a free loopback port (or `port`), with a worker registered for extract_fields as in a running ix. */
export async function listeningApi(
  db: Database,
  config: Partial<ApiConfig> = {},
  port = 0,
): Promise<{ app: ApiApp; base: string; port: number }> {
  await workers.registerWorker(db, { id: randomUUID(), host: "test-host", pid: process.pid, useCases: ["extract_fields"], concurrency: 1 });
  const app = await buildApp({ db, config: apiConfig(config) });
  await app.listen({ host: "127.0.0.1", port });
  const { port: bound } = app.server.address() as { port: number };
  return { app, base: `http://127.0.0.1:${bound}`, port: bound };
}

/** Ends a running job as its worker would: done, or error when `error` is given. */
export async function finishRun(db: Database, job: Job, error: string | null = null): Promise<void> {
  const now = new Date();
  const response = lifecycle.buildResponse(job, {
    pipeline: "extract_fields",
    error,
    result: error === null ? { fields: {} } : null,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    attempt: job.attempts + 1,
  });
  const [completed] = await jobs.completeMany(db, [{ jobId: job.job_id, attempts: job.attempts, response }]);
  if (completed === undefined) throw new Error(`job ${job.job_id} was not running`);
}

let counter = 0;

/** A valid submission with a unique request_id. */
export function submission(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    use_case: "extract_fields",
    ix_client_id: "client-a",
    request_id: `req-${process.pid}-${counter}`,
    context: { texts: ["Invoice 42, total 10.00 EUR"] },
    ...overrides,
  };
}
