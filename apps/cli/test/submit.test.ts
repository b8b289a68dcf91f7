import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Job } from "@ix/contracts";
import { type Database, jobs, sql } from "@ix/store";
import { sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { listeningApi } from "./api.ts";
import { runIx } from "./run-ix.ts";

// `ix submit`, its scheduling flags and --batch, as real processes against a real API and database.

async function writeTemp(name: string, content: string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), "ix-submit-")), name);
  await writeFile(file, content);
  return file;
}

async function jobCount(db: Database): Promise<number> {
  const { rows } = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
  return rows[0]?.n ?? -1;
}

/** The JSON lines ix printed on stdout. */
function printed(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("ix submit", () => {
  test("--priority, --run-at, --max-attempts and --callback-url set those fields; they are part of the request", async ({
    database: { db },
  }) => {
    const { app, env } = await listeningApi(db);
    try {
      const file = await writeTemp("request.json", JSON.stringify({ ...sampleRequest(), priority: 1 }));
      const flags = ["--priority", "-5", "--run-at", "2999-01-01T09:00:00+01:00", "--max-attempts", "2", "--callback-url", "https://hooks.example/ix"];
      const submitted = await runIx(["submit", file, ...flags], env);
      expect(submitted.code, submitted.stderr).toBe(0);
      const job = Job.parse(JSON.parse(submitted.stdout));
      expect(job).toMatchObject({ priority: -5, run_at: "2999-01-01T08:00:00.000Z", max_attempts: 2, callback_url: "https://hooks.example/ix" });
      expect(await jobs.get(db, job.job_id)).toEqual(job);

      const again = await runIx(["submit", file, ...flags], env);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(`already submitted: job ${job.job_id}`);
      // Without the flags the file asks for priority 1 and no run_at: another request under the same request_id.
      const plain = await runIx(["submit", file], env);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toContain("409");

      for (const [flag, value] of [["--priority", "101"], ["--run-at", "tomorrow"], ["--max-attempts", "0"]] as const) {
        const refused = await runIx(["submit", file, flag, value], env);
        expect(refused.code, `${flag} ${value}`).toBe(2);
        expect(refused.stderr).toContain(flag);
      }
      expect(await jobCount(db)).toBe(1);
    } finally {
      await app.close();
    }
  });

  test("a use_case no worker serves: exit 1 printing the 422 with the known use_cases", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const refused = await runIx(["submit", "-"], env, JSON.stringify(sampleRequest({ use_case: "no_such_case" })));
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toContain("422");
      expect(refused.stderr).toContain('"no_such_case"');
      expect(refused.stderr).toContain("known: extract_fields");
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });
});

describe("ix submit --batch", () => {
  test("one result line per submission, in order, with its line number; exit 1 when any is refused", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const first = sampleRequest();
      const lines = [
        JSON.stringify(first),
        "",
        JSON.stringify({ ...sampleRequest(), use_case: 7 }),
        "   ",
        JSON.stringify(first),
        JSON.stringify(sampleRequest({ use_case: "no_such_case" })),
        JSON.stringify({ ...first, context: { texts: ["changed"] } }),
      ];
      const file = await writeTemp("jobs.jsonl", `${lines.join("\n")}\n`);
      const result = await runIx(["submit", "--batch", file], env);
      expect(result.code, result.stderr).toBe(1);
      const out = printed(result.stdout);
      expect(out.map((r) => [r.line, r.status])).toEqual([[1, 201], [3, 400], [5, 200], [6, 422], [7, 409]]);
      expect(out[1]).toMatchObject({ problem: { errors: [{ path: "use_case" }] } });
      expect(out[3]).toMatchObject({ problem: { known_use_cases: ["extract_fields"] } });
      expect(out[2]?.job).toEqual(out[0]?.job);
      expect(result.stderr).toContain("3 not accepted");
      expect(await jobCount(db)).toBe(1);

      // Every line accepted: exit 0.
      const fine = await runIx(["submit", "--batch", "-"], env, `${JSON.stringify(first)}\n${JSON.stringify(sampleRequest())}`);
      expect(fine.code, fine.stderr).toBe(0);
      expect(printed(fine.stdout).map((r) => r.status)).toEqual([200, 201]);
    } finally {
      await app.close();
    }
  });

  test("more lines than one request takes go in chunks of 1,000, the flags applied to every line", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const requests = Array.from({ length: 1_203 }, () => sampleRequest());
      const result = await runIx(["submit", "--batch", "--priority", "7", "-"], env, requests.map((r) => JSON.stringify(r)).join("\r\n"));
      expect(result.code, result.stderr).toBe(0);
      const out = printed(result.stdout);
      expect(out.map((r) => r.line)).toEqual(requests.map((_, i) => i + 1));
      expect(out.map((r) => (r.job as Job).request_id)).toEqual(requests.map((r) => r.request_id));
      const { rows } = await db.execute<{ n: number; priority: number }>(sql`select count(*)::int as n, min(priority) as priority from ix_jobs`);
      expect(rows[0]).toEqual({ n: 1_203, priority: 7 });
    } finally {
      await app.close();
    }
  });

  test("a line that is not JSON is a usage error naming it, and nothing is sent", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    try {
      const file = await writeTemp("jobs.jsonl", `${JSON.stringify(sampleRequest())}\n\n{"use_case": \n`);
      const result = await runIx(["submit", "--batch", file], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`${file} line 3 is not JSON`);
      expect(result.stdout).toBe("");
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("a request that fails as a whole: exit 1 naming the lines not submitted", async ({ database: { db } }) => {
    const { app, env } = await listeningApi(db);
    await app.close(); // nothing listens there any more
    const result = await runIx(["submit", "--batch", "-"], env, `${JSON.stringify(sampleRequest())}\n${JSON.stringify(sampleRequest())}\n`);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("stdin lines 1 to 2 were not submitted");
    expect(result.stderr).toContain("cannot reach the ix API");
  });
});
