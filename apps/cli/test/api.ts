import { randomUUID } from "node:crypto";
import { apiConfig, buildApp, type ApiConfig } from "@ix/api";
import type { Job } from "@ix/contracts";
import { type Database, jobs, lifecycle, workers } from "@ix/store";

/** An API on a free port, with a worker registered for extract_fields as in a running ix; `env` points `ix` at it. */
export async function listeningApi(db: Database, config: Partial<ApiConfig> = {}) {
  await workers.registerWorker(db, { id: randomUUID(), host: "test-host", pid: process.pid, useCases: ["extract_fields"], concurrency: 1 });
  const app = await buildApp({ db, config: apiConfig(config) });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, env: { IX_API_URL: base } };
}

/** Claims the job and ends its run as a worker would: done, or error when `error` is given. */
export async function runToEnd(db: Database, jobId: string, error: string | null = null): Promise<void> {
  const [claimed] = await jobs.claimPending(db, { limit: 1 });
  if (claimed?.job_id !== jobId) throw new Error(`expected to claim ${jobId}, claimed ${claimed?.job_id}`);
  const now = new Date();
  const response = lifecycle.buildResponse(claimed, {
    pipeline: "extract_fields",
    error,
    result: error === null ? { fields: {} } : null,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    attempt: 1,
  });
  await jobs.completeMany(db, [{ jobId, attempts: claimed.attempts, response }]);
}

/** The job JSON `ix` printed on stdout. */
export function printedJob(stdout: string): Job {
  return JSON.parse(stdout) as Job;
}
