import { readFile } from "node:fs/promises";
import { text } from "node:stream/consumers";
import { apiClient } from "../api-client";
import type { CliEnv } from "../env";
import { UsageError } from "../usage-error";

/** Posts a RequestIX read from a file or stdin and prints the job. */
export async function submit(env: CliEnv, file: string | undefined, { callbackUrl }: { callbackUrl?: string }): Promise<void> {
  let raw: string;
  if (file !== undefined && file !== "-") {
    raw = await readFile(file, "utf8").catch((error: unknown) => {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    });
  } else if (process.stdin.isTTY) {
    throw new UsageError("give a file, or pipe the request JSON on stdin: ix submit request.json");
  } else {
    raw = await text(process.stdin);
  }
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`${file ?? "stdin"} is not JSON: ${(error as Error).message}`);
  }
  if (callbackUrl !== undefined) {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new UsageError("the request must be a JSON object");
    body = { ...body, callback_url: callbackUrl };
  }
  const { status, job } = await apiClient(env).submit(body);
  if (status === 200) console.error(`already submitted: job ${job.job_id} (${job.status})`);
  console.log(JSON.stringify(job, null, 2));
}
