// Effects are waited for on a condition with a deadline, never slept on.
import type { ChildProcess } from "node:child_process";
import { pg } from "@ix/store";
import { waitFor } from "@ix/testing/wait";

export { waitFor };

/**
 * Waits until a server speaking PostgreSQL's protocol at `url` (PostgreSQL
 * itself, PgBouncer) answers `select 1` on a fresh connection; fails at once,
 * with its output, if `server` exits first.
 */
export async function waitForPostgresProtocol(
  what: string,
  url: string,
  server: ChildProcess,
  output: () => string,
  { timeoutMs, intervalMs }: { timeoutMs: number; intervalMs: number },
): Promise<void> {
  await waitFor(
    `${what} to answer`,
    async () => {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`${what} exited (${server.exitCode ?? server.signalCode}): ${output()}`);
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.query("select 1");
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    { timeoutMs, intervalMs },
  );
}

/** A fixed pace (e.g. "kill a worker every ~2 s"), not a wait for an effect. */
export function pace(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
