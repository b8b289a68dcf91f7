import { randomUUID } from "node:crypto";
import { type Executor, workers } from "@ix/store";

export interface TestWorkerOptions {
  /** Shown in ix_workers.host; default `test-host`. */
  host?: string;
  /** Default 1. */
  concurrency?: number;
}

/**
 * Records a worker serving `useCases` through the store's own
 * `workers.registerWorker`, as a starting worker does: the API accepts only
 * use_cases a registered worker serves, and a test or tool that runs no worker
 * process needs one on record. Returns the registration, under a fresh id.
 */
export async function registerTestWorker(
  db: Executor,
  useCases: readonly string[],
  { host = "test-host", concurrency = 1 }: TestWorkerOptions = {},
): Promise<workers.WorkerRegistration> {
  const registration = { id: randomUUID(), host, pid: process.pid, useCases, concurrency };
  await workers.registerWorker(db, registration);
  return registration;
}
