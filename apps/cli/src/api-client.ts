import { BatchResults, Job, Problem } from "@ix/contracts";
import type { CliEnv } from "./env";

/** A non-2xx answer from the API, with its problem details when it sent them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
  ) {
    const fields = problem?.errors?.map((e) => `\n  ${e.path}: ${e.message}`).join("") ?? "";
    super(`API answered ${status}: ${problem?.title ?? "no problem details"}${problem?.detail ? ` (${problem.detail})` : ""}${fields}`);
    this.name = "ApiError";
  }
}

/** The few calls `ix submit`, `ix get`, `ix cancel` and `ix retry` make, over the API's public REST interface. */
export function apiClient(env: CliEnv) {
  const headers: Record<string, string> = { accept: "application/json, application/problem+json" };
  if (env.IX_API_KEY) headers.authorization = `Bearer ${env.IX_API_KEY}`;

  /** The 2xx answer's status and parsed JSON; a problem (or any non-2xx) throws ApiError. */
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const url = new URL(path, env.IX_API_URL);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new Error(`cannot reach the ix API at ${env.IX_API_URL} (is it running? set IX_API_URL)`, { cause: error });
    }
    const text = await response.text();
    if (!response.ok) {
      const parsed = Problem.safeParse(safeJson(text));
      throw new ApiError(response.status, parsed.success ? parsed.data : null);
    }
    return { status: response.status, json: JSON.parse(text) };
  }

  async function callForJob(method: string, path: string, body?: unknown): Promise<{ status: number; job: Job }> {
    const { status, json } = await call(method, path, body);
    return { status, job: Job.parse(json) };
  }

  return {
    submit: (body: unknown) => callForJob("POST", "/jobs", body),
    /** One result per submission, in order; a request refused as a whole (400, 413, 503) throws ApiError. */
    submitBatch: async (jobs: readonly unknown[]) => BatchResults.parse((await call("POST", "/jobs/batch", { jobs })).json).results,
    get: async (jobId: string) => (await callForJob("GET", `/jobs/${encodeURIComponent(jobId)}`)).job,
    /** 200: it was pending and is cancelled; 202: it is running and its worker will stop it. */
    cancel: (jobId: string) => callForJob("POST", `/jobs/${encodeURIComponent(jobId)}/cancel`),
    retry: async (jobId: string) => (await callForJob("POST", `/jobs/${encodeURIComponent(jobId)}/retry`)).job,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
