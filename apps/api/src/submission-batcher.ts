import { jobs, type Executor } from "@ix/store";

export type Submission = jobs.InsertPendingParams;
export type SubmissionResult = jobs.InsertPendingResult;

/** A submission arrived after the batcher closed (the API is shutting down); answered 503. */
export class SubmissionsClosedError extends Error {
  constructor() {
    super("the API is shutting down and takes no new submissions");
    this.name = "SubmissionsClosedError";
  }
}

interface Waiting {
  submission: Submission;
  resolve: (result: SubmissionResult) => void;
  reject: (error: unknown) => void;
}

export interface SubmissionBatcherOptions {
  /** Most submissions in one statement; the rest wait for the next. */
  maxBatch?: number;
}

/**
 * Groups concurrent `POST /jobs` submissions into one `insertPendingMany`
 * statement each. Every submitting transaction NOTIFYs, and PostgreSQL
 * serialises notifying commits (a database-wide lock held until the commit
 * record is flushed), so one transaction per request cannot share a WAL flush:
 * measured ~1.8k notifying inserts/s against ~5.5k without NOTIFY (BENCHMARKS.md).
 *
 * No timer: an idle batcher sends a submission at once, so a lone request waits
 * for nothing; submissions that arrive while a statement is in flight queue and
 * go together in the next one. The batch size thus follows the load by itself.
 * Idempotency (spec §3/§6) is the store's: results come back per submission,
 * and a later submission of a key already in the batch gets the first's job.
 * A statement that fails fails every submission in it with the same error, so
 * each request gets the answer it would have got alone (e.g. 503).
 */
export class SubmissionBatcher {
  readonly #db: Executor;
  readonly #maxBatch: number;
  #queue: Waiting[] = [];
  #inFlight: Promise<void> | undefined;
  #closed = false;

  constructor(db: Executor, { maxBatch = 500 }: SubmissionBatcherOptions = {}) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    this.#db = db;
    this.#maxBatch = maxBatch;
  }

  submit(submission: Submission): Promise<SubmissionResult> {
    if (this.#closed) return Promise.reject(new SubmissionsClosedError());
    return new Promise((resolve, reject) => {
      this.#queue.push({ submission, resolve, reject });
      if (this.#inFlight === undefined) this.#flush();
    });
  }

  /** Refuses new submissions and resolves once every queued one has been answered. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  #flush(): void {
    const batch = this.#queue.splice(0, this.#maxBatch);
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = undefined;
      if (this.#queue.length > 0) this.#flush();
    });
  }

  async #send(batch: Waiting[]): Promise<void> {
    try {
      const results = await jobs.insertPendingMany(
        this.#db,
        batch.map((w) => w.submission),
      );
      batch.forEach((waiting, index) => {
        const result = results[index];
        if (result) waiting.resolve(result);
        else waiting.reject(new Error(`insertPendingMany returned ${results.length} results for ${batch.length} submissions`));
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
