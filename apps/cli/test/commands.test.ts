import { mkdtemp, readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jobs, loadMigrations, sql } from "@ix/store";
import { finishRun, registerTestWorker, sampleRequest, test } from "@ix/testing";
import { describe, expect, it } from "vitest";
import { runIx } from "./run-ix.ts";

describe("usage", () => {
  it("every command has --help, exiting 0", async () => {
    for (const command of ["", "start", "api", "worker", "migrate", "prune", "submit", "get", "jobs", "cancel", "retry"]) {
      const result = await runIx(command ? [command, "--help"] : ["--help"]);
      expect(result.code, command).toBe(0);
      expect(result.stdout).toContain("Usage: ix");
    }
  });

  it("--version prints the version of the ix package, exiting 0", async () => {
    const { version } = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const result = await runIx([flag]);
      expect(result.code, flag).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
    }
  });

  it("unknown commands, bad arguments and bad values exit 2 naming the problem", async () => {
    const unknown = await runIx(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("frobnicate");

    const direction = await runIx(["migrate", "sideways"], { IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/x" });
    expect(direction.code).toBe(2);
    expect(direction.stderr).toMatch(/sideways/);

    const duration = await runIx(["prune", "--older-than", "forever"], { IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/x" });
    expect(duration.code).toBe(2);
    expect(duration.stderr).toContain("--older-than");

    const noUrl = await runIx(["migrate", "up"]);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("IX_POSTGRES_URL");
  });

  it("a bad IX_ value stops ix start with a message naming the variable, before anything starts", async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), "ix-cli-")), "pg");
    const result = await runIx(["start"], { IX_WORKER_CONCURRENCY: "lots", IX_API_PORT: "99999", IX_DATA_DIR: dataDir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("IX_WORKER_CONCURRENCY");
    expect(result.stderr).toContain("IX_API_PORT");
    expect(existsSync(dataDir)).toBe(false);
    // A variable both the API and the worker read is reported once.
    const shared = await runIx(["start"], { IX_CALLBACK_ALLOWED_HOSTS: "not a host!", IX_DATA_DIR: dataDir });
    expect(shared.code).toBe(2);
    expect(shared.stderr.match(/IX_CALLBACK_ALLOWED_HOSTS/g)).toHaveLength(1);
    // Checked against the loaded pipelines, still before PostgreSQL is started.
    const unserved = await runIx(["start"], { IX_WORKER_USE_CASES: "extract_fields,ocr", IX_DATA_DIR: dataDir });
    expect(unserved.code).toBe(2);
    expect(unserved.stderr).toContain('IX_WORKER_USE_CASES: no pipeline is registered for "ocr" (registered: extract_fields)');
    expect(existsSync(dataDir)).toBe(false);
  });

  it("ix api and ix worker refuse to run without IX_POSTGRES_URL", async () => {
    for (const command of ["api", "worker"]) {
      const result = await runIx([command]);
      expect(result.code, command).not.toBe(0);
      expect(result.stderr, command).toContain("IX_POSTGRES_URL");
    }
  });
});

describe("migrate", () => {
  test("status, down, then up, against a real database", async ({ database: { db, url } }) => {
    const env = { IX_POSTGRES_URL: url };
    const status = await runIx(["migrate", "status"], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/applied\s+0000_init/);
    expect(status.stdout).toContain("schema is current");

    // One step reverts the newest migration; the rest take the table with them.
    const tags = loadMigrations().map((m) => m.tag);
    const newest = await runIx(["migrate", "down"], env);
    expect(newest.code).toBe(0);
    expect(newest.stdout).toContain(`reverted: ${tags.at(-1)}`);
    const down = await runIx(["migrate", "down", "--steps", String(tags.length - 1)], env);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`reverted: ${tags.slice(0, -1).reverse().join(", ")}`);
    const gone = await db.execute<{ t: string | null }>(sql`select to_regclass('ix_jobs')::text as t`);
    expect(gone.rows[0]?.t).toBeNull();
    const behind = await runIx(["migrate", "status"], env);
    expect(behind.code).toBe(1);
    expect(behind.stdout).toMatch(/pending\s+0000_init/);

    const up = await runIx(["migrate", "up"], env);
    expect(up.code).toBe(0);
    expect(up.stdout).toContain(`applied: ${tags.join(", ")}`);
    expect(await jobs.claimPending(db, { limit: 1 })).toEqual([]);
  });
});

describe("prune", () => {
  test("removes only terminal jobs older than the retention, and workers not seen within IX_WORKER_REGISTRY_DAYS", async ({
    database: { db, url },
  }) => {
    for (const id of ["old-done", "old-error", "new-done", "old-running", "pending"]) {
      await jobs.insertPending(db, { request: sampleRequest({ request_id: id }) });
    }
    const claimed = await jobs.claimPending(db, { limit: 4 });
    for (const job of claimed.slice(0, 3)) await finishRun(db, job, job.request_id === "old-error" ? "failed" : null);
    await db.execute(sql`update ix_jobs set finished_at = now() - interval '8 days' where request_id in ('old-done', 'old-error')`);
    await db.execute(sql`update ix_jobs set started_at = now() - interval '8 days' where request_id = 'old-running'`);
    const seen = { fresh: await registerTestWorker(db, ["a"]), week: await registerTestWorker(db, ["b"]), month: await registerTestWorker(db, ["c"]) };
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '8 days' where id = ${seen.week.id}`);
    await db.execute(sql`update ix_workers set last_seen_at = now() - interval '40 days' where id = ${seen.month.id}`);
    const workersLeft = async () => (await db.execute<{ id: string }>(sql`select id from ix_workers`)).rows.map((r) => r.id).sort();

    const bad = await runIx(["prune", "--older-than", "7d"], { IX_POSTGRES_URL: url, IX_WORKER_REGISTRY_DAYS: "0" });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("IX_WORKER_REGISTRY_DAYS");
    expect(await workersLeft()).toEqual([seen.fresh.id, seen.week.id, seen.month.id].sort());

    const month = await runIx(["prune", "--older-than", "7d", "--batch-size", "1"], { IX_POSTGRES_URL: url, IX_WORKER_REGISTRY_DAYS: "30" });
    expect(month.code).toBe(0);
    expect(month.stdout).toContain("pruned 2 terminal jobs");
    expect(month.stdout).toContain("pruned 1 worker registration not seen for 30 days");
    const left = await db.execute<{ request_id: string }>(sql`select request_id from ix_jobs order by request_id`);
    expect(left.rows.map((r) => r.request_id)).toEqual(["new-done", "old-running", "pending"]);
    expect(await workersLeft()).toEqual([seen.fresh.id, seen.week.id].sort());

    // The default window is the API's: 7 days.
    const week = await runIx(["prune", "--older-than", "7d"], { IX_POSTGRES_URL: url });
    expect(week.code).toBe(0);
    expect(week.stdout).toContain("pruned 0 terminal jobs");
    expect(week.stdout).toContain("pruned 1 worker registration not seen for 7 days");
    expect(await workersLeft()).toEqual([seen.fresh.id]);
  });
});
