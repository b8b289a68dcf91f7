import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertReachable, freePort } from "@ix/provision";
import { describe, expect, it } from "vitest";
import { provisionTestServer, waitFor } from "../src/index.ts";

describe("waitFor", () => {
  it("returns the first value that is not undefined or false, counting throws as not yet", async () => {
    let calls = 0;
    const value = await waitFor("the third call", () => {
      calls += 1;
      if (calls === 1) throw new Error("not up yet");
      return calls === 3 ? "ready" : false;
    }, { intervalMs: 1 });
    expect(value).toBe("ready");
    expect(calls).toBe(3);
  });

  it("fails naming what it waited for, with the last error as the cause", async () => {
    const cause = new Error("still down");
    const error = await waitFor("the database", () => {
      throw cause;
    }, { timeoutMs: 20, intervalMs: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/waiting for the database/);
    expect((error as Error).cause).toBe(cause);
  });
});

describe("provisionTestServer", () => {
  it("an explicit URL wins without asking Docker", async () => {
    const port = await freePort(); // nothing listens there: the URL is tried, and only it
    const messages: string[] = [];
    const error = await provisionTestServer({
      url: `postgres://ix@127.0.0.1:${port}/postgres`,
      dataDir: "/nonexistent",
      persistent: false,
      log: (m) => messages.push(m),
    }).catch((e: unknown) => e);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect(messages.join("\n")).not.toMatch(/Docker|Testcontainers/);
  });

  it("without a URL: Testcontainers when a Docker engine answers, else embedded PostgreSQL", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "ix-testing-provision-"));
    const messages: string[] = [];
    try {
      const server = await provisionTestServer({ dataDir, persistent: false, log: (m) => messages.push(m) });
      try {
        const noDocker = messages.some((m) => m.startsWith("no Docker engine answered"));
        expect(server.kind).toBe(noDocker ? "embedded" : "testcontainers");
        await assertReachable(server.url);
      } finally {
        await server.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
