import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@ix/provision";
import { test } from "@ix/testing";
import { describe, expect } from "vitest";
import { exited, runIx, spawnIx } from "./run-ix.ts";

// Logs are JSON lines unless a person watches (a terminal, or IX_LOG_FORMAT=pretty), and every record
// names its component, the same field in ix start, ix api and ix worker.

/** Everything the child writes, and a way to wait for a piece of it. */
function collect(child: ChildProcess) {
  let output = "";
  const waiters: Array<() => void> = [];
  const take = (chunk: Buffer) => {
    output += chunk.toString();
    for (const check of [...waiters]) check();
  };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  return {
    get output() {
      return output;
    },
    until(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${output}`)), timeoutMs);
        const check = () => {
          if (!pattern.test(output)) return;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          resolve();
        };
        waiters.push(check);
        check();
      });
    },
  };
}

/** The JSON records among `output`'s lines (ix start also prints a banner). */
function records(output: string): Array<Record<string, unknown>> {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function stop(child: ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  expect(await exited(child)).toBe(0);
}

describe("logs", () => {
  test("ix api and ix worker write JSON lines naming their component when stdout is not a terminal", async ({ database: { url } }) => {
    for (const [command, component, ready] of [
      ["api", "api", /ix api listening/],
      ["worker", "worker", /worker starting/],
    ] as const) {
      const child = spawnIx([command], { IX_POSTGRES_URL: url, IX_API_PORT: "0" });
      const out = collect(child);
      await out.until(ready);
      await stop(child);
      const logged = records(out.output);
      expect(logged.length, command).toBeGreaterThan(1);
      // Every line is JSON, and every record names the component.
      expect(out.output.trim().split("\n").every((line) => line.startsWith("{")), out.output).toBe(true);
      for (const record of logged) expect(record.component, JSON.stringify(record)).toBe(component);
    }
  });

  test("IX_LOG_FORMAT=pretty writes readable lines with the same component", async ({ database: { url } }) => {
    const child = spawnIx(["api"], { IX_POSTGRES_URL: url, IX_API_PORT: "0", IX_LOG_FORMAT: "pretty" });
    const out = collect(child);
    await out.until(/ix api listening/);
    await stop(child);
    expect(out.output).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}\[api\] ix api listening url=http:\/\/127\.0\.0\.1:\d+ auth=false$/m);
    expect(out.output).not.toMatch(/^\{/m);
  });

  test("ix start names each part: cli for its own records, api and worker for theirs", async ({ database: { url } }) => {
    let output = "";
    const port = await freePort();
    const state = await mkdtemp(join(tmpdir(), "ix-logs-"));
    try {
      const child = spawnIx(["start"], { IX_POSTGRES_URL: url, IX_API_PORT: String(port), IX_LOG_LEVEL: "info", IX_STATE_DIR: state });
      const out = collect(child);
      await out.until(/Press Ctrl-C to stop\./);
      await stop(child);
      output = out.output;
    } finally {
      await rm(state, { recursive: true, force: true });
    }
    const logged = records(output);
    for (const record of logged) expect(["cli", "api", "worker"], JSON.stringify(record)).toContain(record.component);
    expect(new Set(logged.map((record) => record.component))).toEqual(new Set(["cli", "api", "worker"]));
    expect(logged.find((record) => record.msg === "shutdown requested")?.component).toBe("cli");
  });

  test("IX_LOG_FORMAT other than json or pretty stops start-up naming the variable", async () => {
    const result = await runIx(["worker"], { IX_POSTGRES_URL: "postgres://x@127.0.0.1:1/x", IX_LOG_FORMAT: "yaml" });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("IX_LOG_FORMAT");
  });
});

describe("a database that cannot be reached", () => {
  const PASSWORD = "s3cret-pw-4b2c";

  test("ix worker and ix api say cannot connect to PostgreSQL at host:port, not the statement, never the password", async () => {
    const port = await freePort(); // nothing listens there
    const env = { IX_POSTGRES_URL: `postgres://ix:${PASSWORD}@127.0.0.1:${port}/ix`, IX_API_PORT: "0" };
    for (const command of ["worker", "api"]) {
      const child = spawnIx([command], env);
      const out = collect(child);
      await out.until(new RegExp(`"msg":"[^"]*cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}`));
      // The API serves (answering 503) while the database is away; it is stopped once it listens.
      if (command === "api") await out.until(/ix api listening/);
      await stop(child);
      expect(out.output, command).not.toContain(PASSWORD);
      expect(out.output, command).not.toMatch(/Failed query|database query failed|"statement"/);
      for (const record of records(out.output).filter((r) => r.err)) {
        expect(record.err, command).toMatchObject({ type: "DatabaseUnreachableError", message: `cannot connect to PostgreSQL at 127.0.0.1:${port}` });
      }
    }
  });

  test("ix migrate status says so and exits 1", async () => {
    const port = await freePort();
    const result = await runIx(["migrate", "status"], { IX_POSTGRES_URL: `postgres://ix:${PASSWORD}@127.0.0.1:${port}/ix` });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(`ix: cannot connect to PostgreSQL at 127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port})`);
  });
});
