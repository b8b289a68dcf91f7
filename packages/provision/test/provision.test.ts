import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { connect, DatabaseUnreachableError, migrateUp, migrationStatus } from "@ix/store";
import { assertReachable, freePort, provisionPostgres, redactUrl } from "../src/provision.ts";

describe("provisionPostgres", () => {
  it("an explicit URL wins, and an unreachable one fails naming the server without its password", async () => {
    const port = await freePort(); // nothing listens there
    const url = `postgres://ix:s3cret@127.0.0.1:${port}/postgres`;
    const error = await provisionPostgres({ url, dataDir: "/nonexistent", persistent: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain("s3cret");
    expect(redactUrl(url)).toBe(`postgres://ix:***@127.0.0.1:${port}/postgres`);
  });

  it("assertReachable (ix start with IX_POSTGRES_URL) names the server as the store does, without credentials", async () => {
    const port = await freePort();
    const error = await assertReachable(`postgres://ix:s3cret@127.0.0.1:${port}/ix`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseUnreachableError);
    expect((error as Error).message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:${port}`);
  });

  it("starts an embedded PostgreSQL that ix can migrate and use, keeps its data when persistent, and stops", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "ix-provision-"));
    try {
      const first = await provisionPostgres({ dataDir, persistent: true });
      expect(first.kind).toBe("embedded");
      const db = connect(first.url, { max: 2 });
      try {
        expect(await migrateUp(db)).not.toEqual([]);
      } finally {
        await db.close();
      }
      await first.stop();
      expect(existsSync(join(dataDir, "PG_VERSION"))).toBe(true);

      // A second start on the same directory reuses the data (what `ix start` relies on).
      const second = await provisionPostgres({ dataDir, persistent: true });
      const again = connect(second.url, { max: 1 });
      try {
        expect((await migrationStatus(again)).current).toBe(true);
      } finally {
        await again.close();
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
