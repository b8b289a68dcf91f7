import { createClient, type IxClient } from "@ix/client";
import type { CliEnv } from "./env.ts";

/** The API client the job commands use (`ix submit`, `get`, `jobs`, `cancel`, `retry`), configured by IX_API_URL and IX_API_KEY. */
export function clientFor(env: CliEnv): IxClient {
  return createClient({ baseUrl: env.IX_API_URL, apiKey: env.IX_API_KEY });
}
