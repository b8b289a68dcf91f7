import { requirePostgresUrl } from "@ix/contracts";
import { connect, jobs, workers } from "@ix/store";
import { parseDuration } from "../duration.ts";
import type { CliEnv } from "../env.ts";
import { UsageError } from "../usage-error.ts";

/**
 * Deletes terminal jobs past retention in batches, so no statement locks much
 * of the table at once; then the registrations of workers not seen within
 * IX_WORKER_REGISTRY_DAYS, which no longer count for the API anyway.
 */
export async function prune(env: CliEnv, { olderThan, batchSize }: { olderThan: string; batchSize: number }): Promise<void> {
  const url = requirePostgresUrl(env.IX_POSTGRES_URL, "prune");
  let olderThanSeconds: number;
  try {
    olderThanSeconds = parseDuration(olderThan);
  } catch (error) {
    throw new UsageError(`--older-than: ${(error as Error).message}`);
  }
  const db = connect(url, { max: 1, applicationName: "ix-prune" });
  try {
    let total = 0;
    for (;;) {
      const deleted = await jobs.pruneTerminal(db, { olderThanSeconds, batchSize });
      total += deleted;
      if (deleted < batchSize) break;
    }
    console.log(`pruned ${total} terminal job${total === 1 ? "" : "s"} finished more than ${olderThan} ago`);
    const days = env.IX_WORKER_REGISTRY_DAYS;
    const stale = await workers.pruneStale(db, { withinDays: days });
    console.log(`pruned ${stale} worker registration${stale === 1 ? "" : "s"} not seen for ${days} day${days === 1 ? "" : "s"} (IX_WORKER_REGISTRY_DAYS)`);
  } finally {
    await db.close();
  }
}
