import { type ProvisionedPostgres, type ProvisionOptions, provisionPostgres, redactUrl } from "@ix/provision";

/**
 * Finds the PostgreSQL server a test run uses, in order: an explicit URL; a
 * Testcontainers `postgres:16` when a Docker engine answers; an embedded
 * PostgreSQL. The Testcontainers step lives here, not in @ix/store, so that
 * `ix start` does not carry a container client it never uses.
 */

export interface TestServer extends Omit<ProvisionedPostgres, "kind"> {
  kind: ProvisionedPostgres["kind"] | "testcontainers";
}

export async function provisionTestServer(
  options: ProvisionOptions & {
    /** Try Testcontainers before embedded (default true). */
    docker?: boolean;
  },
): Promise<TestServer> {
  const log = options.log ?? (() => undefined);
  if (!options.url && options.docker !== false) {
    const container = await startContainer(log);
    if (container) return container;
  }
  return provisionPostgres(options);
}

async function startContainer(log: (message: string) => void): Promise<TestServer | null> {
  const { getContainerRuntimeClient } = await import("testcontainers");
  try {
    await getContainerRuntimeClient();
  } catch (error) {
    log(`no Docker engine answered (${error instanceof Error ? error.message : String(error)}); using embedded PostgreSQL`);
    return null;
  }
  // A Docker engine answered: from here on a failure is real and must surface.
  const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
  const container = await new PostgreSqlContainer("postgres:16").start();
  const url = new URL(container.getConnectionUri());
  url.pathname = "/postgres";
  log(`started Testcontainers postgres:16 at ${redactUrl(url.toString())}`);
  return { kind: "testcontainers", url: url.toString(), stop: async () => void (await container.stop()) };
}
