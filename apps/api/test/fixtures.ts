import type { Job, Problem, SubmitJobBody } from "@ix/contracts";
import { sql, type Database } from "@ix/store";
import { registerTestWorker } from "@ix/testing";
import { expect } from "vitest";
import { apiConfig, buildApp, type ApiApp, type ApiConfig, type BuildAppOptions } from "../src/index.ts";

export const KEY_A = "key-for-client-a-0123456789";
export const KEY_B = "key-for-client-b-9876543210";
export const KEYS = [
  { clientId: "client-a", key: KEY_A },
  { clientId: "client-b", key: KEY_B },
];

type AppOptions = Omit<BuildAppOptions, "db" | "config">;

/** The use_case `body()` submits. */
export const USE_CASE = "extract_fields";

/**
 * An app over the test's database, with a worker registered for USE_CASE as
 * in a running ix; closed by the caller (or with `using`-style try/finally).
 */
export async function appFor(db: Database, config: Partial<ApiConfig> = {}, options: AppOptions = {}): Promise<ApiApp> {
  await registerTestWorker(db, [USE_CASE]);
  return buildApp({ db, config: apiConfig(config), ...options });
}

/** An app listening on a free loopback port, reached over real sockets as a client would; `base` is its URL. */
export async function listeningApp(
  db: Database,
  config: Partial<ApiConfig> = {},
  options: AppOptions = {},
): Promise<{ app: ApiApp; base: string }> {
  const app = await appFor(db, config, options);
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, base };
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  json: unknown;
}

/** POSTs JSON (a string is sent as it is) over a real connection and reads the answer. */
export async function postJson(base: string, path: string, payload: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text === "" ? null : JSON.parse(text) };
}

let counter = 0;

/** A valid POST /jobs body with a unique request_id unless one is given. */
export function body(overrides: Partial<SubmitJobBody> & Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    use_case: USE_CASE,
    ix_client_id: "client-a",
    request_id: `req-${process.pid}-${counter}`,
    context: { texts: ["Invoice 42, total 10.00 EUR"] },
    ...overrides,
  };
}

export function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

/** Asserts an RFC 9457 problem with the given status and ix problem kind, and returns it. */
export function expectProblem(
  response: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
  status: number,
  kind?: string,
): Problem {
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const problem = response.json() as Problem;
  expect(problem.status).toBe(status);
  expect(response.statusCode).toBe(status);
  if (kind !== undefined) expect(problem.type).toBe(`https://ix.dev/problems/${kind}`);
  expect(problem.title.length).toBeGreaterThan(0);
  return problem;
}

export function asJob(response: { json(): unknown }): Job {
  return response.json() as Job;
}

export async function jobCount(db: Database): Promise<number> {
  const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
  return result.rows[0]?.n ?? -1;
}
