import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { provisionPostgres, redactUrl } from "@ix/provision";
import { adminQuery, databaseUrl, quoteIdent } from "@ix/testing/admin";

/** The PostgreSQL server every system is measured on, and fresh databases on it. */
export interface BenchServer {
  /** The maintenance database's URL, redacted, for the report. */
  label: string;
  /** `server_version`, `fsync`, `synchronous_commit`, `shared_buffers`: the machine facts for BENCHMARKS.md. */
  settings: Record<string, string>;
  pgbenchPath: string | null;
  /** Creates `ix_bench_<system>_<random>` and returns its URL; dropped by `close()`. */
  freshDatabase(system: string): Promise<{ name: string; url: string }>;
  close(): Promise<void>;
}

/**
 * An explicit server URL wins (--database-url or IX_POSTGRES_URL, read by the
 * caller); without one an embedded PostgreSQL is started in a temporary
 * directory, like `ix start` does, and removed at the end.
 */
export async function openBenchServer({
  url,
  pgbenchPath,
  log,
}: {
  url?: string | undefined;
  pgbenchPath: string | null;
  log: (message: string) => void;
}): Promise<BenchServer> {
  const provisioned = await provisionPostgres({
    url,
    dataDir: url ? "" : await mkdtemp(join(tmpdir(), "ix-bench-pg-")),
    persistent: false,
    log,
  });
  const serverUrl = provisioned.url;
  const rows = await adminQuery<{ name: string; setting: string }>(
    serverUrl,
    "select name, setting from pg_settings where name in ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')",
  );
  const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  const created: string[] = [];
  return {
    label: redactUrl(serverUrl),
    settings,
    pgbenchPath,
    async freshDatabase(system) {
      const name = `ix_bench_${system.replaceAll(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
      await adminQuery(serverUrl, `create database ${quoteIdent(name)}`);
      created.push(name);
      return { name, url: databaseUrl(serverUrl, name) };
    },
    async close() {
      try {
        for (const name of created) await adminQuery(serverUrl, `drop database if exists ${quoteIdent(name)} with (force)`);
      } finally {
        await provisioned.stop();
      }
    },
  };
}
