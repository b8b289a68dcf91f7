import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { connect, migrateUp } from "@ix/store";
import { adminQuery, databaseUrl, quoteIdent } from "./admin.ts";
import { testEnv } from "./env.ts";
import "./provided.ts";
import { provisionTestServer } from "./provision.ts";

/**
 * Provisions one PostgreSQL server for the whole run and migrates a template
 * database once; every test then gets its own database cloned from it
 * (graphile-worker's and trigger.dev's practice), so files run in parallel
 * without sharing rows. A server that cannot be provisioned fails the run:
 * database tests are never skipped.
 */
export default async function setup(project: TestProject) {
  const run = await provisionTestRun({ url: testEnv.IX_TEST_DATABASE_URL, log: (message) => console.log(`[ix-test] ${message}`) });
  project.provide("ixTestServerUrl", run.serverUrl);
  project.provide("ixTestTemplate", run.template);
  return run.teardown;
}

export interface TestRun {
  serverUrl: string;
  template: string;
  /** Drops the template, stops the server, and removes the embedded data directory: nothing is left behind. */
  teardown(): Promise<void>;
}

/** The server and migrated template of one test run. */
export async function provisionTestRun(options: {
  url?: string | undefined;
  /** Try Testcontainers before embedded (default true). */
  docker?: boolean;
  /** Where an embedded server's data directory goes (default: the system's temporary directory). */
  tmp?: string;
  log?: (message: string) => void;
}): Promise<TestRun> {
  const log = options.log ?? (() => undefined);
  // Named, not created: only an embedded server makes it, so a run on a URL or in a container leaves no empty directory.
  const dataDir = join(options.tmp ?? tmpdir(), `ix-test-pg-${randomBytes(6).toString("hex")}`);
  const removeDataDir = () => rm(dataDir, { recursive: true, force: true });
  let server: Awaited<ReturnType<typeof provisionTestServer>>;
  try {
    server = await provisionTestServer({ url: options.url, docker: options.docker, dataDir, persistent: false, log });
  } catch (error) {
    await removeDataDir();
    throw error;
  }
  const template = `ix_template_${randomBytes(6).toString("hex")}`;
  const teardown = async () => {
    try {
      await adminQuery(server.url, `drop database if exists ${quoteIdent(template)} with (force)`);
    } finally {
      await server.stop();
      await removeDataDir();
    }
  };
  try {
    await adminQuery(server.url, `create database ${quoteIdent(template)}`);
    const db = connect(databaseUrl(server.url, template), { max: 1 });
    try {
      await migrateUp(db);
    } finally {
      await db.close();
    }
  } catch (error) {
    await teardown();
    throw error;
  }
  log(`database tests run on ${server.kind} PostgreSQL, template ${template}`);
  return { serverUrl: server.url, template, teardown };
}
