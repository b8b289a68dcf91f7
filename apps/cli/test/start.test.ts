import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "@ix/store";
import { freePort } from "@ix/provision";
import { test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import { exited, runIx, spawnIx, waitForOutput } from "./run-ix.ts";

async function requestFile(dir: string, requestId: string): Promise<string> {
  const file = join(dir, `${requestId}.json`);
  await writeFile(
    file,
    JSON.stringify({
      use_case: "extract_fields",
      ix_client_id: "demo",
      request_id: requestId,
      context: { texts: ["Invoice 42, total 10.00 EUR"] },
      options: { fields: { total: "\\d+\\.\\d{2}" } },
    }),
  );
  return file;
}

/** No process may still be running out of `dataDir` (no orphaned embedded PostgreSQL). */
function processesUsing(dataDir: string): string[] {
  try {
    return execFileSync("pgrep", ["-af", dataDir], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe("ix start", () => {
  test("start → submit → get --wait → done, with a loopback callback, then Ctrl-C stops cleanly", async ({ database: { db, url } }) => {
    const dir = await mkdtemp(join(tmpdir(), "ix-start-"));
    const hooks: Array<{ headers: IncomingMessage["headers"]; body: string }> = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        hooks.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const hookPort = (receiver.address() as { port: number }).port;
    const port = await freePort();
    const ix = spawnIx(["start"], { IX_POSTGRES_URL: url, IX_API_PORT: String(port), IX_LOG_LEVEL: "warn", IX_STATE_DIR: dir });
    try {
      // The worker has registered what it serves by the time the API first answers (the API routes submissions by it).
      await waitFor("the API to answer", () => fetch(`http://127.0.0.1:${port}/healthz`).then((res) => res.ok), { intervalMs: 5 });
      const { rows: registered } = await db.execute<{ use_cases: string[] }>(sql`select use_cases from ix_workers`);
      expect(registered).toEqual([{ use_cases: ["extract_fields"] }]);

      const banner = await waitForOutput(ix, "Press Ctrl-C to stop.");
      expect(banner).toContain(`http://127.0.0.1:${port}`);
      expect(banner).toContain(`http://127.0.0.1:${port}/docs`);
      expect(banner).toContain(`dashboard http://127.0.0.1:${port}/ui`);
      expect(banner).toContain("curl -s");

      const api = { IX_API_URL: `http://127.0.0.1:${port}` };
      const submitted = await runIx(
        ["submit", await requestFile(dir, "cli-1"), "--callback-url", `http://127.0.0.1:${hookPort}/hook`],
        api,
      );
      expect(submitted.code, submitted.stderr).toBe(0);
      const job = JSON.parse(submitted.stdout) as { job_id: string; status: string };
      expect(job.status).toBe("pending");

      const waited = await runIx(["get", job.job_id, "--wait", "--interval", "100ms"], api);
      expect(waited.code, waited.stderr).toBe(0);
      const done = JSON.parse(waited.stdout) as { status: string; response: { result: { fields: { total: Array<{ value: string }> } } } };
      expect(done.status).toBe("done");
      expect(done.response.result.fields.total.map((m) => m.value)).toEqual(["10.00"]);
      expect(waited.stderr).toContain(`${job.job_id} done`);

      // Resubmitting the same request answers the same job.
      const again = await runIx(["submit", "-"], api, JSON.stringify({
        use_case: "extract_fields",
        ix_client_id: "demo",
        request_id: "cli-1",
        context: { texts: ["Invoice 42, total 10.00 EUR"] },
        options: { fields: { total: "\\d+\\.\\d{2}" } },
      }));
      expect(again.code, again.stderr).toBe(0);
      expect((JSON.parse(again.stdout) as { job_id: string }).job_id).toBe(job.job_id);

      // ix start allows loopback callbacks: the receiver on 127.0.0.1 gets the job.
      const deadline = Date.now() + 30_000;
      while (hooks.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(hooks.length).toBe(1);
      expect(hooks[0]!.headers["webhook-id"]).toBe(job.job_id);
      expect((JSON.parse(hooks[0]!.body) as { status: string }).status).toBe("done");

      const missing = await runIx(["get", "00000000-0000-4000-8000-000000000000"], api);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("404");
    } finally {
      ix.kill("SIGINT");
      expect(await exited(ix)).toBe(0);
      receiver.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("with IX_API_KEYS the banner never prints a key: its curl example reads $IX_API_KEY, which works", async ({ database: { url } }) => {
    const key = "start-banner-key-7c1e9a4f2b6d8e0a";
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), "ix-keys-"));
    const ix = spawnIx(["start"], { IX_POSTGRES_URL: url, IX_API_PORT: String(port), IX_LOG_LEVEL: "info", IX_API_KEYS: `alice:${key}`, IX_STATE_DIR: dir });
    let output = "";
    ix.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    ix.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      const banner = await waitForOutput(ix, "Press Ctrl-C to stop.");
      expect(banner).toContain('-H "authorization: Bearer $IX_API_KEY"');
      expect(banner).toContain('"ix_client_id":"alice"');
      expect(banner).toContain('set IX_API_KEY to a key of client "alice"');
      // What the banner tells the user to do works.
      const file = join(dir, "req.json");
      await writeFile(file, JSON.stringify({ use_case: "extract_fields", ix_client_id: "alice", request_id: "k-1", context: { texts: ["x"] } }));
      const submitted = await runIx(["submit", file], { IX_API_URL: `http://127.0.0.1:${port}`, IX_API_KEY: key });
      expect(submitted.code, submitted.stderr).toBe(0);
    } finally {
      ix.kill("SIGINT");
      expect(await exited(ix)).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
    // Nothing ix start printed, banner or logs, carries the key.
    expect(output).not.toContain(key);
  });

  test("with no IX_ variables it runs on embedded PostgreSQL, stops it on Ctrl-C, and reuses the data", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ix-fresh-"));
    // mkdtemp makes it 0700; as root, embedded PostgreSQL runs as the postgres user, who must get in.
    await chmod(dir, 0o755);
    const dataDir = join(dir, "pg");
    const port = await freePort();
    const env = { IX_DATA_DIR: dataDir, IX_API_PORT: String(port), IX_LOG_LEVEL: "warn", IX_STATE_DIR: dir };
    const api = { IX_API_URL: `http://127.0.0.1:${port}` };
    try {
      const first = spawnIx(["start"], env);
      let jobId: string;
      try {
        const banner = await waitForOutput(first, "Press Ctrl-C to stop.", 120_000);
        expect(banner).toContain("embedded");
        const submitted = await runIx(["submit", await requestFile(dir, "fresh-1")], api);
        expect(submitted.code, submitted.stderr).toBe(0);
        jobId = (JSON.parse(submitted.stdout) as { job_id: string }).job_id;
        const waited = await runIx(["get", jobId, "--wait", "--interval", "100ms"], api);
        expect(waited.code, waited.stderr).toBe(0);
        expect((JSON.parse(waited.stdout) as { status: string }).status).toBe("done");
      } finally {
        first.kill("SIGINT");
      }
      expect(await exited(first)).toBe(0);
      expect(processesUsing(dataDir)).toEqual([]);

      const second = spawnIx(["start"], env);
      try {
        await waitForOutput(second, "Press Ctrl-C to stop.", 120_000);
        const kept = await runIx(["get", jobId], api);
        expect(kept.code, kept.stderr).toBe(0);
        expect((JSON.parse(kept.stdout) as { status: string }).status).toBe("done");
      } finally {
        second.kill("SIGINT");
      }
      expect(await exited(second)).toBe(0);
      expect(processesUsing(dataDir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
