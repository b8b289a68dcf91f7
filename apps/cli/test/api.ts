import { apiConfig, buildApp, type ApiConfig } from "@ix/api";
import type { Job } from "@ix/contracts";
import { type Database, jobs } from "@ix/store";
import { finishRun, registerTestWorker } from "@ix/testing";

/** An API on a free port, with a worker registered for extract_fields as in a running ix; `env` points `ix` at it. */
export async function listeningApi(db: Database, config: Partial<ApiConfig> = {}) {
  await registerTestWorker(db, ["extract_fields"]);
  const app = await buildApp({ db, config: apiConfig(config) });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, env: { IX_API_URL: base } };
}

/** Claims the job and ends its run as a worker would: done, or error when `error` is given. */
export async function runToEnd(db: Database, jobId: string, error: string | null = null): Promise<void> {
  const [claimed] = await jobs.claimPending(db, { limit: 1 });
  if (claimed?.job_id !== jobId) throw new Error(`expected to claim ${jobId}, claimed ${claimed?.job_id}`);
  await finishRun(db, claimed, error);
}

/** The job JSON `ix` printed on stdout. */
export function printedJob(stdout: string): Job {
  return JSON.parse(stdout) as Job;
}
