import { chmod, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { adminQuery } from "../src/admin.ts";
import { provisionTestRun } from "../src/global-setup.ts";

// A test run leaves nothing behind: no template database, no server, no ix-test-pg-* directory.

async function templateExists(serverUrl: string, template: string): Promise<boolean> {
  const rows = await adminQuery(serverUrl, `select 1 from pg_database where datname = '${template}'`);
  return rows.length > 0;
}

describe("provisionTestRun", () => {
  it("on a given server: creates no temporary directory, and its teardown drops the template", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "ix-run-url-"));
    try {
      const serverUrl = inject("ixTestServerUrl");
      const run = await provisionTestRun({ url: serverUrl, tmp });
      expect(await templateExists(serverUrl, run.template)).toBe(true);
      expect(await readdir(tmp)).toEqual([]);
      await run.teardown();
      expect(await templateExists(serverUrl, run.template)).toBe(false);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("on embedded PostgreSQL: its data directory exists while the run lasts and is gone after teardown", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "ix-run-embedded-"));
    // As root, embedded PostgreSQL runs as the postgres user, who must get into the directory.
    await chmod(tmp, 0o755);
    try {
      const run = await provisionTestRun({ docker: false, tmp });
      try {
        expect((await readdir(tmp)).filter((name) => name.startsWith("ix-test-pg-"))).toHaveLength(1);
      } finally {
        await run.teardown();
      }
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
