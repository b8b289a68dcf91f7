import type { Job } from "@ix/contracts";
import { type Database, jobs } from "@ix/store";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { listeningApi } from "./api.ts";
import { runIx } from "./run-ix.ts";

// `ix jobs` as a real process against a real API: pages, filters, formats, and who is asked about.

/** `n` pending jobs of `client`, stored by one statement; returned newest first, as the listing orders them. */
async function submitted(db: Database, client: string, n: number): Promise<Job[]> {
  const results = await jobs.insertPendingMany(
    db,
    Array.from({ length: n }, () => ({ request: sampleRequest({ ix_client_id: client }) })),
  );
  const created = results.map((r) => r.job);
  return created.sort((a, b) => b.created_at.localeCompare(a.created_at) || b.job_id.localeCompare(a.job_id));
}

function lines(stdout: string): Job[] {
  return stdout.trim() === "" ? [] : stdout.trim().split("\n").map((line) => JSON.parse(line) as Job);
}

describe("ix jobs", () => {
  test("JSON Lines, newest first, reading pages of 200 until --limit; says when there are more", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const all = await submitted(db, "billing", 230);
      await submitted(db, "other", 3);

      // 230 jobs, two pages of 200 read; the count goes to stderr.
      const everything = await runIx(["jobs", "--client", "billing", "--limit", "500"], env);
      expect(everything.code, everything.stderr).toBe(0);
      expect(lines(everything.stdout).map((job) => job.job_id)).toEqual(all.map((job) => job.job_id));
      expect(everything.stderr.trim()).toBe("230 jobs");

      const newest = await runIx(["jobs", "--client", "billing", "--limit", "210"], env);
      expect(lines(newest.stdout).map((job) => job.job_id)).toEqual(all.slice(0, 210).map((job) => job.job_id));
      expect(newest.stderr).toContain("210 jobs (the newest 210; there are more: raise --limit)");

      // The default is 50; exactly as many as exist is not "more".
      const page = await runIx(["jobs", "--client", "billing"], env);
      expect(lines(page.stdout)).toHaveLength(50);
      const exact = await runIx(["jobs", "--client", "other", "--limit", "3"], env);
      expect(exact.stderr.trim()).toBe("3 jobs");
    } finally {
      await app.close();
    }
  });

  test("--status filters; --format table prints a column each", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const request = sampleRequest({ ix_client_id: "billing" });
      const failed = await insertJob(db, { status: "error", request });
      await insertJob(db, { status: "done", request: sampleRequest({ ix_client_id: "billing" }) });

      const errors = await runIx(["jobs", "--client", "billing", "--status", "error"], env);
      expect(errors.code, errors.stderr).toBe(0);
      expect(lines(errors.stdout)).toEqual([failed]);
      expect(errors.stderr.trim()).toBe("1 job with status error");

      const table = await runIx(["jobs", "--client", "billing", "--status", "error", "--format", "table"], env);
      expect(table.code, table.stderr).toBe(0);
      const [header, row, ...rest] = table.stdout.trimEnd().split("\n");
      expect(header?.split(/\s+/)).toEqual(["JOB_ID", "CLIENT", "STATUS", "USE_CASE", "REQUEST_ID", "CREATED_AT", "FINISHED_AT"]);
      expect(row?.split(/\s+/)).toEqual([failed.job_id, "billing", "error", failed.request.use_case, failed.request_id, failed.created_at, failed.finished_at]);
      expect(rest).toEqual([]);
    } finally {
      await app.close();
    }
  });

  test("with IX_API_KEY the key's client is listed; an admin key or no key lists every client's", async ({ database: { db } }) => {
    const key = "key-for-billing-0123456789";
    const adminKey = "key-for-the-operator-0123456789";
    const { app, env } = await listeningApi(db, { apiKeys: [{ clientId: "billing", key }], adminKeys: [{ clientId: "ops", key: adminKey }] });
    try {
      const [own] = await submitted(db, "billing", 1);
      const [theirs] = await submitted(db, "other", 1);
      const listed = await runIx(["jobs"], { ...env, IX_API_KEY: key });
      expect(listed.code, listed.stderr).toBe(0);
      expect(lines(listed.stdout).map((job) => job.job_id)).toEqual([own!.job_id]);
      // Another client's jobs are not visible to this key: the API's 404, exit 1.
      const other = await runIx(["jobs", "--client", "other"], { ...env, IX_API_KEY: key });
      expect(other.code).toBe(1);
      expect(other.stderr).toContain("answered 404");

      const everyone = await runIx(["jobs"], { ...env, IX_API_KEY: adminKey });
      expect(everyone.code, everyone.stderr).toBe(0);
      expect(lines(everyone.stdout).map((job) => job.job_id).sort()).toEqual([own!.job_id, theirs!.job_id].sort());
      const badStatus = await runIx(["jobs", "--client", "billing", "--status", "finished"], env);
      expect(badStatus.code).toBe(2);
      expect(badStatus.stderr).toContain("finished");
      const badLimit = await runIx(["jobs", "--client", "billing", "--limit", "0"], env);
      expect(badLimit.code).toBe(2);
    } finally {
      await app.close();
    }
  });
});
