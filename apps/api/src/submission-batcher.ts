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

/**
 * A submission waited longer than `maxWaitMs` for the statement ahead of it
 * (a database stuck on a lock, or gone); answered 503 like a pool timeout.
 */
export class SubmissionQueueTimeoutError extends Error {
  constructor(waitedMs: number) {
    super(`no database statement could take this submission within ${waitedMs} ms`);
    this.name = "SubmissionQueueTimeoutError";
  }
}

interface Waiting {
  submission: Submission;
  resolve: (result: SubmissionResult) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

export interface SubmissionBatcherOptions {
  /** Most submissions in one statement; the rest wait for the next. */
  maxBatch?: number;
  /**
   * Longest a submission may wait in the queue before a statement takes it;
   * it is then answered with SubmissionQueueTimeoutError. Without it a request
   * would queue behind a stuck statement for as long as that statement lasts.
   */
  maxWaitMs?: number;
}

/**
 * Groups concurrent `POST /jobs` submissions into one `insertPendingMany`
 * statement each. Every submitting transaction NOTIFYs, and PostgreSQL
 * serialises notifying commits (a database-wide lock held until the commit
 * record is flushed), so one transaction per request cannot share a WAL flush
 * (figures in BENCHMARKS.md, "HTTP submit").
 *
 * No timer: an idle batcher sends a submission at once, so a lone request waits
 * for nothing; submissions that arrive while a statement is in flight queue and
 * go together in the next one. The batch size thus follows the load by itself.
 * Idempotency is the store's: results come back per submission,
 * and a later submission of a key already in the batch gets the first's job.
 * Each submission is settled on its own: one whose row the insert created is
 * answered 201 even if re-reading the batch's already existing keys then
 * fails, and those get the error (e.g. 503), as each would have alone.
 */
export class SubmissionBatcher {
  readonly #db: Executor;
  readonly #maxBatch: number;
  readonly #maxWaitMs: number | undefined;
  #queue: Waiting[] = [];
  #inFlight: Promise<void> | undefined;
  #closed = false;

  constructor(db: Executor, { maxBatch = 500, maxWaitMs }: SubmissionBatcherOptions = {}) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (maxWaitMs !== undefined && !(maxWaitMs > 0)) throw new RangeError(`maxWaitMs must be positive, got ${maxWaitMs}`);
    this.#db = db;
    this.#maxBatch = maxBatch;
    this.#maxWaitMs = maxWaitMs;
  }

  submit(submission: Submission): Promise<SubmissionResult> {
    if (this.#closed) return Promise.reject(new SubmissionsClosedError());
    return new Promise((resolve, reject) => {
      const waiting: Waiting = { submission, resolve, reject, timer: undefined };
      this.#queue.push(waiting);
      if (this.#inFlight === undefined) {
        this.#flush();
      } else if (this.#maxWaitMs !== undefined) {
        // Only a submission that has to wait gets a timer: the idle path stays timer-free.
        const maxWaitMs = this.#maxWaitMs;
        waiting.timer = setTimeout(() => {
          const index = this.#queue.indexOf(waiting);
          if (index < 0) return; // already taken by a statement
          this.#queue.splice(index, 1);
          reject(new SubmissionQueueTimeoutError(maxWaitMs));
        }, maxWaitMs);
      }
    });
  }

  /** Refuses new submissions and resolves once every queued one has been answered. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  #flush(): void {
    const batch = this.#queue.splice(0, this.#maxBatch);
    for (const waiting of batch) clearTimeout(waiting.timer);
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = undefined;
      if (this.#queue.length > 0) this.#flush();
    });
  }

  async #send(batch: Waiting[]): Promise<void> {
    try {
      const results = await jobs.insertPendingManySettled(
        this.#db,
        batch.map((w) => w.submission),
      );
      batch.forEach((waiting, index) => {
        const result = results[index];
        if (result?.status === "fulfilled") waiting.resolve(result.value);
        else if (result?.status === "rejected") waiting.reject(result.reason);
        else waiting.reject(new Error(`insertPendingManySettled returned ${results.length} results for ${batch.length} submissions`));
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
