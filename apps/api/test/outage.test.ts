import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Job } from "@ix/contracts";
import { connect, migrateUp } from "@ix/store";
import { freePort, provisionPostgres, type ProvisionedPostgres } from "@ix/store/provision";
import { describe, expect, test } from "vitest";
import type { ApiApp } from "../src";
import { appFor, body, expectProblem } from "./fixtures";

/** Polls `check` until it holds or the deadline passes; the effect is awaited, not slept on. */
async function until(check: () => Promise<boolean>, deadlineMs: number, what: string): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The shared test server cannot be stopped, so this test runs its own
 * embedded PostgreSQL, stops it under a running API, and starts it again on
 * the same data directory and port.
 */
describe("database stopped and restarted under the API", () => {
  test("answers 503 with Retry-After while it is down, and serves the same data once it is back", { timeout: 120_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "ix-api-outage-"));
    const port = await freePort();
    const start = () => provisionPostgres({ dataDir, port, persistent: true });
    let server: ProvisionedPostgres | undefined = await start();
    expect(server.kind).toBe("embedded");
    const db = connect(server.url, { max: 4, connectionTimeoutMillis: 1_000, statementTimeoutMillis: 2_000 });
    let app: ApiApp | undefined;
    try {
      await migrateUp(db);
      app = await appFor(db, { retryAfterSeconds: 3 });
      const created = await app.inject({ method: "POST", url: "/jobs", payload: body() });
      expect(created.statusCode).toBe(201);
      const job = Job.parse(created.json());

      await server.stop();
      server = undefined;

      for (const request of [
        { method: "POST" as const, url: "/jobs", payload: body() },
        { method: "GET" as const, url: `/jobs/${job.job_id}` },
        { method: "GET" as const, url: `/jobs?client_id=${job.client_id}` },
        { method: "GET" as const, url: "/readyz" },
      ]) {
        const response = await app.inject(request);
        expectProblem(response, 503, "unavailable");
        expect(response.headers["retry-after"]).toBe("3");
      }
      // Liveness does not depend on the database.
      expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);

      server = await start();
      const api = app;
      await until(async () => (await api.inject({ method: "GET", url: "/readyz" })).statusCode === 200, 30_000, "readiness");
      const again = await app.inject({ method: "GET", url: `/jobs/${job.job_id}` });
      expect(again.statusCode).toBe(200);
      expect(Job.parse(again.json())).toEqual(job);
      expect((await app.inject({ method: "POST", url: "/jobs", payload: body() })).statusCode).toBe(201);
    } finally {
      await app?.close();
      await db.close();
      await server?.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
