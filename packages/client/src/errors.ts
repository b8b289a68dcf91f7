import type { Job, Problem } from "@ix/contracts";

/** Every error this package throws on purpose is one of these; `instanceof IxError` catches them all. */
export class IxError extends Error {
  override name = "IxError";
}

/**
 * The API answered with a non-2xx status. `problem` is its RFC 9457 body
 * (`errors` names each bad field, `job_id` the conflicting job on a 409,
 * `known_use_cases` the served use_cases on a 422), or null when the answer
 * carried none (a proxy's error page, say); `body` is the raw text then.
 */
export class IxProblemError extends IxError {
  override name = "IxProblemError";
  constructor(
    readonly status: number,
    readonly problem: Problem | null,
    readonly request: { method: string; path: string },
    readonly headers: Headers,
    readonly body: string,
  ) {
    super(problemMessage(status, problem, request, body));
  }
}

function problemMessage(status: number, problem: Problem | null, { method, path }: { method: string; path: string }, body: string): string {
  const head = `${method} ${path} answered ${status}`;
  if (problem === null) {
    const snippet = body.trim().slice(0, 200);
    return `${head} without problem details${snippet ? `: ${snippet}` : ""}`;
  }
  const fields = problem.errors?.map((e) => `\n  ${e.path}: ${e.message}`).join("") ?? "";
  return `${head}: ${problem.title}${problem.detail ? ` (${problem.detail})` : ""}${fields}`;
}

/** No answer: the connection failed or broke off. `cause` is what fetch threw. */
export class IxNetworkError extends IxError {
  override name = "IxNetworkError";
}

/** No complete answer within the client's `timeoutMs`. A network error too: both mean "try again later". */
export class IxTimeoutError extends IxNetworkError {
  override name = "IxTimeoutError";
  constructor(
    message: string,
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}

/** `wait` gave up before the job ended. `job` is the last state seen (null if the job was never read). */
export class IxWaitTimeoutError extends IxError {
  override name = "IxWaitTimeoutError";
  constructor(
    readonly jobId: string,
    readonly timeoutMs: number,
    readonly job: Job | null,
    options?: ErrorOptions,
  ) {
    super(`job ${jobId} ${job === null ? "was not read" : `still ${job.status}`} after ${timeoutMs / 1000} s`, options);
  }
}

/**
 * A callback that must not be trusted: a signature header missing, no
 * signature matching the secret, or a timestamp outside the 5-minute window.
 * Answer such a request with a 4xx and do not act on it.
 */
export class IxCallbackVerificationError extends IxError {
  override name = "IxCallbackVerificationError";
}
