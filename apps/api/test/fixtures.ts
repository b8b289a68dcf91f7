import type { Job, Problem, SubmitJobBody } from "@ix/contracts";
import { sql, type Database } from "@ix/store";
import { expect } from "vitest";
import { apiConfig, buildApp, type ApiApp, type ApiConfig } from "../src";

export const KEY_A = "key-for-client-a-0123456789";
export const KEY_B = "key-for-client-b-9876543210";
export const KEYS = [
  { clientId: "client-a", key: KEY_A },
  { clientId: "client-b", key: KEY_B },
];

/** An app over the test's database; closed by the caller (or with `using`-style try/finally). */
export async function appFor(db: Database, config: Partial<ApiConfig> = {}): Promise<ApiApp> {
  return buildApp({ db, config: apiConfig(config) });
}

let counter = 0;

/** A valid POST /jobs body with a unique request_id unless one is given. */
export function body(overrides: Partial<SubmitJobBody> & Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    use_case: "extract_fields",
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
