import type { BatchItemResult, Problem, RequestIX, SubmitJobBody, TraceContext } from "@ix/contracts";
import type { jobs } from "@ix/store";
import type { z } from "zod";
import type { Caller } from "./auth.ts";
import { problem, validationProblem } from "./problems.ts";
import { isSameRequest, isSameSchedule } from "./resubmission.ts";
import type { UseCaseRegistry } from "./use-case-registry.ts";

/**
 * How one submission is judged, whether it came alone (`POST /jobs`) or as an
 * item of `POST /jobs/batch`: the same checks in the same order, so an item
 * gets exactly the answer it would have got alone (apps/api/README.md,
 * "Submitting").
 */

/** One submission's answer: a job (201 new, 200 the same request again) or a problem with its status. */
export type Verdict = BatchItemResult;

/** A submission as the route received it: parsed by its schema, or already refused (400, 413). */
export type Candidate = { ok: true; body: SubmitJobBody } | { ok: false; problem: Problem };

/**
 * Stores submissions, settling each on its own, in input order: the batcher for
 * `POST /jobs`, one `jobs.insertPendingManySettled` for a batch.
 */
export type StoreSubmissions = (
  items: jobs.InsertPendingParams[],
) => Promise<Array<PromiseSettledResult<jobs.InsertPendingResult>>>;

export interface JudgeContext {
  caller: Caller;
  registry: UseCaseRegistry;
  store: StoreSubmissions;
  /** The request's W3C trace context (`traceContextFromHeaders`), stored with every job it creates; a batch's items all take it. */
  trace: TraceContext | null;
}

const REFUSALS = new Set([400, 403, 409, 413, 422] as const);
type RefusalStatus = typeof REFUSALS extends Set<infer S> ? S : never;

function refusal(body: Problem): Verdict {
  if (!REFUSALS.has(body.status as RefusalStatus)) throw new Error(`a submission cannot be refused with status ${body.status}`);
  return { status: body.status as RefusalStatus, problem: body };
}

/**
 * Parses one batch item with the schema `POST /jobs` validates its body with.
 * An item larger than one submission may be (measured as compact JSON) is a
 * 413, as it would be alone; `measure` is false when the whole batch is within
 * that limit, so no item can exceed it and none is serialised to find out.
 */
export function parseSubmission(
  schema: z.ZodType<SubmitJobBody>,
  item: unknown,
  { limitBytes, measure }: { limitBytes: number; measure: boolean },
): Candidate {
  if (measure) {
    const bytes = Buffer.byteLength(JSON.stringify(item) ?? "", "utf8");
    if (bytes > limitBytes) {
      return {
        ok: false,
        problem: problem(
          "payload-too-large",
          `this submission is ${bytes} bytes as JSON; one submission may be at most ${limitBytes} (IX_API_BODY_LIMIT_BYTES)`,
        ),
      };
    }
  }
  const parsed = schema.safeParse(item);
  return parsed.success ? { ok: true, body: parsed.data } : { ok: false, problem: validationProblem("submission", parsed.error) };
}

/**
 * Judges submissions in order: refused ones keep their problem; then 403 for
 * an ix_client_id that is not the key's client, 422 for a use_case no worker
 * serves, and the rest are stored in one call and answered 201, 200 or 409.
 * Each verdict is at its submission's index. Rejects, answering nothing, when
 * the registry or the store cannot settle a submission (the database is
 * unavailable): a retry is safe, as a stored submission then answers 200.
 */
export async function judgeSubmissions(candidates: readonly Candidate[], { caller, registry, store, trace }: JudgeContext): Promise<Verdict[]> {
  const verdicts: Array<Verdict | undefined> = Array.from({ length: candidates.length });
  let admitted: Array<{ index: number; body: SubmitJobBody }> = [];
  candidates.forEach((candidate, index) => {
    if (!candidate.ok) {
      verdicts[index] = refusal(candidate.problem);
    } else if (caller.kind === "client" && candidate.body.ix_client_id !== caller.clientId) {
      verdicts[index] = refusal(
        problem("forbidden", `this key belongs to client "${caller.clientId}", not "${candidate.body.ix_client_id}"`),
      );
    } else {
      admitted.push({ index, body: candidate.body });
    }
  });

  if (admitted.length > 0) {
    const { unknown, known } = await registry.check(admitted.map(({ body }) => body.use_case));
    if (unknown.length > 0) {
      const unserved = new Set(unknown);
      admitted = admitted.filter(({ index, body }) => {
        if (!unserved.has(body.use_case)) return true;
        verdicts[index] = refusal(unknownUseCase(body.use_case, known));
        return false;
      });
    }
  }

  const settled = await store(admitted.map(({ body }) => insertParams(body, trace)));
  settled.forEach((result, position) => {
    if (result.status === "rejected") throw result.reason;
    const { index, body } = admitted[position]!;
    verdicts[index] = verdictOf(body, result.value);
  });
  return verdicts.map((verdict, index) => {
    if (verdict === undefined) throw new Error(`submission ${index} was not judged`);
    return verdict;
  });
}

function unknownUseCase(useCase: string, known: readonly string[]): Problem {
  const listed = known.length === 0 ? "no use_case is registered" : `known: ${known.join(", ")}`;
  return problem(
    "unknown-use-case",
    `no worker has registered use_case "${useCase}" recently (IX_WORKER_REGISTRY_DAYS), so no job of it would run; ${listed}`,
    { known_use_cases: [...known] },
  );
}

/** A submission split into what the store takes: the request, where to call back, how to schedule. */
function split(body: SubmitJobBody) {
  const { callback_url: callbackUrl, priority, run_at: runAt, max_attempts: maxAttempts, ...request } = body;
  const requestIX: RequestIX = request;
  return { request: requestIX, callbackUrl, schedule: { priority, run_at: runAt, max_attempts: maxAttempts } };
}

function insertParams(body: SubmitJobBody, trace: TraceContext | null): jobs.InsertPendingParams {
  const { request, callbackUrl, schedule } = split(body);
  return {
    request,
    callbackUrl: callbackUrl ?? null,
    trace,
    ...(schedule.priority === undefined ? {} : { priority: schedule.priority }),
    ...(schedule.run_at === undefined ? {} : { runAt: schedule.run_at }),
    ...(schedule.max_attempts === undefined ? {} : { maxAttempts: schedule.max_attempts }),
  };
}

/** 201 for a new job; for an existing one, 200 if it asks for the same thing, else 409 naming it. */
function verdictOf(body: SubmitJobBody, { job, created, submitted: stored }: jobs.InsertPendingResult): Verdict {
  if (created) return { status: 201, job };
  const { request, schedule } = split(body);
  const sameRequest = isSameRequest(job.request, request);
  if (sameRequest && isSameSchedule(stored, schedule)) return { status: 200, job };
  return refusal(
    problem(
      "request-conflict",
      `request_id "${job.request_id}" of client "${job.client_id}" already names job ${job.job_id} with a different ` +
        (sameRequest ? "priority, run_at or max_attempts" : "request"),
      { job_id: job.job_id },
    ),
  );
}
