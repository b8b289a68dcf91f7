import { randomBytes } from "node:crypto";
import { test as base, inject } from "vitest";
import { connect, type Database, type PoolOptions } from "@ix/store";
import { adminQuery, databaseUrl, quoteIdent } from "./admin.ts";
import "./provided.ts";

export interface TestDatabase {
  name: string;
  /** URL of this test's own database, for extra connections and child processes. */
  url: string;
  db: Database;
  /** Opens another pool on the same database (closed with the fixture). */
  connect(options?: PoolOptions): Database;
}

/**
 * Creates a fresh database from the migrated template (or an empty one, for
 * migration tests). CREATE DATABASE from
 * one template is serialised by PostgreSQL and fails with 55006 while another
 * clone is copying it, so that case is retried.
 */
export async function createTestDatabase({ empty = false } = {}): Promise<{
  name: string;
  url: string;
  drop(): Promise<void>;
}> {
  const serverUrl = inject("ixTestServerUrl");
  const template = empty ? "template0" : inject("ixTestTemplate");
  const name = `ix_test_${randomBytes(6).toString("hex")}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(serverUrl, `create database ${quoteIdent(name)} template ${quoteIdent(template)}`);
      break;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "55006" || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    }
  }
  return {
    name,
    url: databaseUrl(serverUrl, name),
    drop: async () => {
      await adminQuery(serverUrl, `drop database if exists ${quoteIdent(name)} with (force)`);
    },
  };
}

/**
 * `test` with a `database` fixture: each test gets its own freshly migrated
 * database and a pool on it, both gone when the test ends. No mocks: every
 * query runs on real PostgreSQL.
 */
export const test = base.extend<{ database: TestDatabase }>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures must destructure
  database: async ({}, use) => {
    const created = await createTestDatabase();
    const pools: Array<Database & { close(): Promise<void> }> = [];
    const open = (options?: PoolOptions) => {
      const db = connect(created.url, { max: 20, ...options });
      pools.push(db);
      return db;
    };
    const db = open();
    await use({ name: created.name, url: created.url, db, connect: open });
    await Promise.all(pools.map((p) => p.close()));
    await created.drop();
  },
});

export { expect, describe } from "vitest";
export { waitFor } from "./wait.ts";
export { type HeardNotification, type Listening, listenFor } from "./listen.ts";
export { sampleRequest } from "./sample-request.ts";
export { callbackState, insertJob, type JobFixture, setCallbackStatus } from "./jobs.ts";
export { provisionTestServer, type TestServer } from "./provision.ts";
export { registerTestWorker, type TestWorkerOptions } from "./workers.ts";
export { finishRun, runResponse } from "./runs.ts";
