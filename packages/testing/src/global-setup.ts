import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
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
  const server = await provisionTestServer({
    url: testEnv.IX_TEST_DATABASE_URL,
    dataDir: await mkdtemp(join(tmpdir(), "ix-test-pg-")),
    persistent: false,
    log: (message) => console.log(`[ix-test] ${message}`),
  });
  const template = `ix_template_${randomBytes(6).toString("hex")}`;
  await adminQuery(server.url, `create database ${quoteIdent(template)}`);
  const db = connect(databaseUrl(server.url, template), { max: 1 });
  try {
    await migrateUp(db);
  } finally {
    await db.close();
  }
  console.log(`[ix-test] database tests run on ${server.kind} PostgreSQL, template ${template}`);
  project.provide("ixTestServerUrl", server.url);
  project.provide("ixTestTemplate", template);

  return async () => {
    await adminQuery(server.url, `drop database if exists ${quoteIdent(template)} with (force)`);
    await server.stop();
  };
}
