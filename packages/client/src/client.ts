import type { BatchItemResult, BatchResults, Job, JobList, JobStatus, SubmitJobInput } from "@ix/contracts";
import { type CallOptions, createTransport, type TransportOptions } from "./http.ts";
import { type WaitOptions, waitForJob } from "./wait.ts";

export interface ClientOptions extends TransportOptions {
  /** Where the API listens, e.g. `http://127.0.0.1:8080`; a path prefix is kept (`https://gateway/ix`). */
  baseUrl: string | URL;
  /** A key of the API's IX_API_KEYS, sent as a bearer token; leave it out for an API without keys. */
  apiKey?: string | undefined;
  /** Another fetch (a proxy agent, a test double); default the global one. */
  fetch?: typeof globalThis.fetch | undefined;
  /** Per request, the answer's body included; over it, IxTimeoutError. Default 30 s. */
  timeoutMs?: number | undefined;
}

/** `POST /jobs`: 201 a new job, 200 this request was submitted before (the job as it is now). */
export interface Submitted {
  status: 201 | 200;
  job: Job;
}

/** `POST /jobs/{id}/cancel`: 200 it was pending and is cancelled; 202 it is running and its worker stops it. */
export interface Cancelled {
  status: 200 | 202;
  job: Job;
}

export interface ListOptions extends CallOptions {
  /**
   * Whose jobs. With a client key it is the key's client (another is a 404); with an admin key
   * (IX_ADMIN_KEYS) or an API without keys, every client's when left out.
   */
  clientId?: string;
  status?: JobStatus;
  /** Only jobs of this use_case. */
  useCase?: string;
  /** Jobs per page (per request), 1–200; default the API's, 50. */
  pageSize?: number;
  /** Start from a page a previous listing handed out (`next_cursor`). */
  cursor?: string;
}

export interface IxClient {
  /** The normalised base URL requests go to. */
  readonly baseUrl: string;
  submit(body: SubmitJobInput, options?: CallOptions): Promise<Submitted>;
  /**
   * Up to 1,000 submissions in one request, one result each, in order: `{status: 201 | 200, job}` or
   * `{status: 400 | 403 | 409 | 413 | 422, problem}`. Only a refusal of the whole request throws.
   */
  submitBatch(jobs: readonly SubmitJobInput[], options?: CallOptions): Promise<BatchItemResult[]>;
  get(jobId: string, options?: CallOptions): Promise<Job>;
  /** The job a client submitted under `requestId`. `clientId` as for `list`. */
  getByRequestId(requestId: string, options?: CallOptions & { clientId?: string }): Promise<Job>;
  /** Pages of jobs, newest first, one request per page, until the last. */
  list(options?: ListOptions): AsyncGenerator<JobList, void, undefined>;
  /** The job once it is done, error or cancelled; see WaitOptions. */
  wait(jobId: string, options?: WaitOptions): Promise<Job>;
  cancel(jobId: string, options?: CallOptions): Promise<Cancelled>;
  /** A job that ended error or cancelled, pending again (same job_id); any other status is a 409. */
  retry(jobId: string, options?: CallOptions): Promise<Job>;
}

const jobPath = (jobId: string, action = "") => `/jobs/${encodeURIComponent(jobId)}${action}`;

/**
 * A client for the ix REST API (the package README has examples). Every
 * non-2xx answer throws IxProblemError; no answer throws IxNetworkError
 * (IxTimeoutError when it was too slow).
 */
export function createClient(options: ClientOptions): IxClient {
  const { base, call } = createTransport(options);

  const get = async (jobId: string, callOptions?: CallOptions) => (await call("GET", jobPath(jobId), callOptions)).json as Job;

  return {
    baseUrl: base,
    async submit(body, callOptions) {
      const { status, json } = await call("POST", "/jobs", { ...callOptions, body });
      return { status: status as Submitted["status"], job: json as Job };
    },
    async submitBatch(jobs, callOptions) {
      const { json } = await call("POST", "/jobs/batch", { ...callOptions, body: { jobs } });
      return (json as BatchResults).results;
    },
    get,
    async getByRequestId(requestId, { clientId, ...callOptions } = {}) {
      return (await call("GET", "/jobs", { ...callOptions, query: { client_id: clientId, request_id: requestId } })).json as Job;
    },
    async *list({ clientId, status, useCase, pageSize, cursor, ...callOptions } = {}) {
      let next: string | undefined = cursor;
      do {
        const query = { client_id: clientId, status, use_case: useCase, limit: pageSize, cursor: next };
        const page = (await call("GET", "/jobs", { ...callOptions, query })).json as JobList;
        yield page;
        next = page.next_cursor ?? undefined;
      } while (next !== undefined);
    },
    wait: (jobId, waitOptions) => waitForJob(get, jobId, waitOptions),
    async cancel(jobId, callOptions) {
      const { status, json } = await call("POST", jobPath(jobId, "/cancel"), callOptions);
      return { status: status as Cancelled["status"], job: json as Job };
    },
    async retry(jobId, callOptions) {
      return (await call("POST", jobPath(jobId, "/retry"), callOptions)).json as Job;
    },
  };
}
