import { requirePostgresUrl } from "@ix/contracts";
import { connect, migrateDown, migrateUp, migrationStatus } from "@ix/store";
import type { CliEnv } from "../env.ts";

export async function migrate(env: CliEnv, direction: string, { steps }: { steps: number }): Promise<void> {
  const db = connect(requirePostgresUrl(env.IX_POSTGRES_URL, "migrate"), { max: 1, applicationName: "ix-migrate" });
  try {
    if (direction === "up") {
      const applied = await migrateUp(db);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "already up to date");
    } else if (direction === "down") {
      const reverted = await migrateDown(db, { steps });
      console.log(reverted.length ? `reverted: ${reverted.join(", ")}` : "nothing to revert");
    } else {
      const status = await migrationStatus(db);
      for (const tag of status.applied) console.log(`applied   ${tag}${status.modified.includes(tag) ? "  (edited since it was applied!)" : ""}`);
      for (const tag of status.pending) console.log(`pending   ${tag}`);
      for (const tag of status.unknown) console.log(`unknown   ${tag}  (applied by a newer ix)`);
      console.log(status.current ? "schema is current" : "schema is NOT current");
      if (!status.current) process.exitCode = 1;
    }
  } finally {
    await db.close();
  }
}
