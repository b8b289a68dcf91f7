import { type ApiApp, type ApiConfig, apiConfig, buildApp } from "@ix/api";
import type { Database } from "@ix/store";
import { registerTestWorker } from "@ix/testing";

// The real API on a real socket over the test's own database: what the client is for.

export const KEY_A = "key-for-client-a-0123456789";
export const KEY_B = "key-for-client-b-9876543210";
export const KEYS = [
  { clientId: "client-a", key: KEY_A },
  { clientId: "client-b", key: KEY_B },
];

/** An API listening on a free loopback port (or `port`), with a worker registered for extract_fields as in a running ix. */
export async function listeningApi(
  db: Database,
  config: Partial<ApiConfig> = {},
  port = 0,
): Promise<{ app: ApiApp; base: string; port: number }> {
  await registerTestWorker(db, ["extract_fields"]);
  const app = await buildApp({ db, config: apiConfig(config) });
  await app.listen({ host: "127.0.0.1", port });
  const { port: bound } = app.server.address() as { port: number };
  return { app, base: `http://127.0.0.1:${bound}`, port: bound };
}

let counter = 0;

/** A valid submission with a unique request_id. */
export function submission(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    use_case: "extract_fields",
    ix_client_id: "client-a",
    request_id: `req-${process.pid}-${counter}`,
    context: { texts: ["Invoice 42, total 10.00 EUR"] },
    ...overrides,
  };
}
