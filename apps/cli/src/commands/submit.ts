import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";
import type { BatchItemResult, SubmitJobInput } from "@ix/client";
import { MAX_BATCH_JOBS } from "@ix/contracts";
import { clientFor } from "../client.ts";
import type { CliEnv } from "../env.ts";
import { follow, printJob, type WaitFlags, waitTimes } from "../follow.ts";
import { UsageError } from "../usage-error.ts";

/** What the flags add to every submission, under the body's own keys; unset flags add nothing. */
export interface SubmitOptions {
  callbackUrl?: string;
  priority?: number;
  runAt?: string;
  maxAttempts?: number;
  batch?: boolean;
  /** Follow the job until it ends (not with --batch). */
  wait?: boolean;
}

/**
 * The most JSON one batch request carries: well under the API's default
 * IX_API_BATCH_BODY_LIMIT_BYTES (16 MiB), so a file of large submissions is
 * sent in more requests rather than refused. A single larger line goes alone.
 */
export const BATCH_REQUEST_BYTES = 8 * 1_048_576;

async function readInput(file: string | undefined, usage: string): Promise<{ raw: string; name: string }> {
  if (file !== undefined && file !== "-") {
    const raw = await readFile(file, "utf8").catch((error: unknown) => {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    });
    return { raw, name: file };
  }
  if (process.stdin.isTTY) throw new UsageError(usage);
  return { raw: await text(process.stdin), name: "stdin" };
}

/** The flags as body fields, e.g. `{ priority: 5 }`. */
function flagFields({ callbackUrl, priority, runAt, maxAttempts }: SubmitOptions): Record<string, unknown> {
  return {
    ...(callbackUrl === undefined ? {} : { callback_url: callbackUrl }),
    ...(priority === undefined ? {} : { priority }),
    ...(runAt === undefined ? {} : { run_at: runAt }),
    ...(maxAttempts === undefined ? {} : { max_attempts: maxAttempts }),
  };
}

/** The body with the flags' fields merged in; the flags win over the body's own keys. */
function withFlags(body: unknown, fields: Record<string, unknown>, where: string): unknown {
  if (Object.keys(fields).length === 0) return body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new UsageError(`${where} must be a JSON object to take --callback-url, --priority, --run-at or --max-attempts`);
  }
  return { ...body, ...fields };
}

/**
 * `ix submit`: posts one submission read from a file or stdin, or with
 * --batch a JSON Lines file of them. With --wait it follows the job until it
 * ends and prints it then, exiting as `ix get --wait` does.
 */
export async function submit(env: CliEnv, file: string | undefined, options: SubmitOptions & WaitFlags): Promise<void> {
  if (options.batch && options.wait) throw new UsageError("--wait follows one job: it cannot be combined with --batch");
  if (options.batch) return submitBatch(env, file, options);
  const times = options.wait ? waitTimes(options) : null;
  const { raw, name } = await readInput(file, "give a file, or pipe the request JSON on stdin: ix submit request.json");
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`${name} is not JSON: ${(error as Error).message}`);
  }
  const client = clientFor(env);
  // The API checks the body against the contract and names each bad field; the CLI does not check it twice.
  const { status, job } = await client.submit(withFlags(body, flagFields(options), "the request") as SubmitJobInput);
  if (status === 200) console.error(`already submitted: job ${job.job_id} (${job.status})`);
  if (times === null) {
    console.log(JSON.stringify(job, null, 2));
    return;
  }
  printJob(await follow(client, job.job_id, times));
}

interface Line {
  /** 1-based, counting blank lines, as an editor shows it. */
  number: number;
  body: unknown;
}

/**
 * Every submission of a JSON Lines input, with its line number. Blank lines
 * are skipped; a line that is not JSON is a usage error naming it, found
 * before anything is sent.
 */
function parseLines(raw: string, name: string, fields: Record<string, unknown>): Line[] {
  const lines: Line[] = [];
  raw.split(/\r?\n/).forEach((content, index) => {
    if (content.trim() === "") return;
    const where = `${name} line ${index + 1}`;
    let body: unknown;
    try {
      body = JSON.parse(content);
    } catch (error) {
      throw new UsageError(`${where} is not JSON: ${(error as Error).message}`);
    }
    lines.push({ number: index + 1, body: withFlags(body, fields, where) });
  });
  if (lines.length === 0) throw new UsageError(`${name} holds no submissions (one JSON object per line)`);
  return lines;
}

/** Consecutive runs of lines, each at most MAX_BATCH_JOBS lines and (unless one line is larger) BATCH_REQUEST_BYTES. */
function chunks(lines: Line[]): Line[][] {
  const out: Line[][] = [];
  let current: Line[] = [];
  let bytes = 0;
  for (const line of lines) {
    const size = Buffer.byteLength(JSON.stringify(line.body), "utf8") + 1;
    if (current.length > 0 && (current.length === MAX_BATCH_JOBS || bytes + size > BATCH_REQUEST_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * `ix submit --batch`: one submission per line, sent to POST /jobs/batch in
 * chunks, one JSON result printed per line as its chunk is answered, in input
 * order. Exit 1 when any line was not answered 201 or 200, or a request failed
 * as a whole (then the lines from that chunk on were not submitted; sending
 * the file again is safe, as stored lines answer 200).
 */
async function submitBatch(env: CliEnv, file: string | undefined, options: SubmitOptions): Promise<void> {
  const { raw, name } = await readInput(file, "give a JSON Lines file, or pipe one on stdin: ix submit --batch jobs.jsonl");
  const lines = parseLines(raw, name, flagFields(options));
  const client = clientFor(env);
  const counts = new Map<number, number>();
  for (const chunk of chunks(lines)) {
    let results: BatchItemResult[];
    try {
      results = await client.submitBatch(chunk.map((line) => line.body as SubmitJobInput));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const cause = error instanceof Error ? error.cause : undefined;
      throw new Error(
        `${name} lines ${chunk[0]!.number} to ${lines.at(-1)!.number} were not submitted: ${reason}. ` +
          "Earlier lines were; submitting the file again is safe (their jobs answer 200).",
        cause === undefined ? undefined : { cause },
      );
    }
    if (results.length !== chunk.length) throw new Error(`the API answered ${results.length} results for ${chunk.length} submissions`);
    chunk.forEach((line, index) => {
      const result = results[index]!;
      counts.set(result.status, (counts.get(result.status) ?? 0) + 1);
      console.log(JSON.stringify({ line: line.number, ...result }));
    });
  }
  const summary = [...counts].sort(([a], [b]) => a - b).map(([status, n]) => `${n} × ${status}`).join(", ");
  const refused = lines.length - (counts.get(201) ?? 0) - (counts.get(200) ?? 0);
  console.error(`${lines.length} submissions: ${summary}${refused > 0 ? `; ${refused} not accepted (see their problem)` : ""}`);
  if (refused > 0) process.exitCode = 1;
}
