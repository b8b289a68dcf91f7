import { requirePostgresUrl } from "@ix/contracts";
import { connect, jobs } from "@ix/store";
import { parseDuration } from "../duration.ts";
import type { CliEnv } from "../env.ts";
import { UsageError } from "../usage-error.ts";

/** Deletes terminal jobs past retention in batches, so no statement locks much of the table at once. */
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
  } finally {
    await db.close();
  }
}
