import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { ConfigError } from "@ix/contracts";
import { test } from "@ix/testing";
import { describe, expect, test as plainTest } from "vitest";
import { ApiEnv, apiConfigFromEnv, apiPoolOptionsFromEnv, assertSafeBind, isLoopbackHost, parseApiEnv, runApiMain } from "../src/index.ts";
import { KEYS } from "./fixtures.ts";

const KEYS_ENV = "client-a:key-for-client-a-0123456789, client-b:key-for-client-b-9876543210";

describe("environment", () => {
  plainTest("defaults when nothing is set", () => {
    const env = parseApiEnv({});
    expect(apiConfigFromEnv(env)).toEqual({
      host: "127.0.0.1",
      port: 8080,
      apiKeys: [],
      adminKeys: [],
      bodyLimitBytes: 1_048_576,
      batchBodyLimitBytes: 16_777_216,
      workerRegistryDays: 7,
      retryAfterSeconds: 2,
      submitQueueTimeoutMs: 2_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5_000,
      idleTimeoutMs: 60_000,
      maxConnections: 1_000,
      callbackAllowedHosts: [],
    });
    expect(env.IX_POSTGRES_URL).toBeUndefined();
  });

  plainTest("IX_POSTGRES_SOCKET_TIMEOUT_MS reaches the pool settings, and must be above the statement timeout or 0", () => {
    expect(apiPoolOptionsFromEnv(parseApiEnv({}))).toMatchObject({ socketTimeoutMillis: 30_000 });
    expect(apiPoolOptionsFromEnv(parseApiEnv({ IX_POSTGRES_SOCKET_TIMEOUT_MS: "0" }))).toMatchObject({ socketTimeoutMillis: 0 });
    try {
      parseApiEnv({ IX_API_STATEMENT_TIMEOUT_MS: "5000", IX_POSTGRES_SOCKET_TIMEOUT_MS: "5000" });
      expect.unreachable("a ConfigError");
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        { variable: "IX_POSTGRES_SOCKET_TIMEOUT_MS", message: "must be above IX_API_STATEMENT_TIMEOUT_MS (5000), or 0" },
      ]);
    }
  });

  plainTest("IX_POSTGRES_POOL_MODE reaches the pool settings; anything but session or transaction is refused", () => {
    expect(apiPoolOptionsFromEnv(parseApiEnv({}))).toMatchObject({ poolMode: "session", statementTimeoutMillis: 5_000 });
    expect(apiPoolOptionsFromEnv(parseApiEnv({ IX_POSTGRES_POOL_MODE: "transaction" }))).toMatchObject({ poolMode: "transaction" });
    try {
      parseApiEnv({ IX_POSTGRES_POOL_MODE: "statement" });
      expect.unreachable("a ConfigError");
    } catch (error) {
      expect((error as ConfigError).problems.map((p) => p.variable)).toEqual(["IX_POSTGRES_POOL_MODE"]);
    }
  });

  plainTest("IX_POSTGRES_READ_URL is optional (empty means unset) and must be a postgres:// URL", () => {
    expect(parseApiEnv({}).IX_POSTGRES_READ_URL).toBeUndefined();
    expect(parseApiEnv({ IX_POSTGRES_READ_URL: "" }).IX_POSTGRES_READ_URL).toBeUndefined();
    expect(parseApiEnv({ IX_POSTGRES_READ_URL: "postgres://ix@standby:5432/ix" }).IX_POSTGRES_READ_URL).toBe("postgres://ix@standby:5432/ix");
    try {
      parseApiEnv({ IX_POSTGRES_READ_URL: "standby:5432" });
      expect.unreachable("a ConfigError");
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([expect.objectContaining({ variable: "IX_POSTGRES_READ_URL", message: expect.stringMatching(/postgres:\/\//) })]);
    }
  });

  plainTest("IX_API_KEYS parses client_id:key pairs, several keys per client allowed", () => {
    const env = parseApiEnv({ IX_API_KEYS: `${KEYS_ENV},client-a:second-key-for-client-a-xx` });
    expect(env.IX_API_KEYS).toEqual([...KEYS, { clientId: "client-a", key: "second-key-for-client-a-xx" }]);
  });

  plainTest("bad values stop start-up naming each variable, without echoing a key", () => {
    const attempt = () =>
      parseApiEnv({
        IX_API_PORT: "eighty",
        IX_API_BODY_LIMIT_BYTES: "-1",
        IX_POSTGRES_URL: "mysql://x",
        IX_API_KEYS: "nocolon,bad client:key-long-enough-1234,short:tiny-secret,a:same-key-0123456789-abcdef,b:same-key-0123456789-abcdef",
      });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const problems = (error as ConfigError).problems;
      expect(problems.map((p) => p.variable).sort()).toEqual([
        "IX_API_BODY_LIMIT_BYTES",
        "IX_API_KEYS",
        "IX_API_KEYS",
        "IX_API_KEYS",
        "IX_API_KEYS",
        "IX_API_PORT",
        "IX_POSTGRES_URL",
      ]);
      const message = (error as Error).message;
      expect(message).not.toContain("tiny-secret");
      expect(message).not.toContain("same-key-0123456789-abcdef");
      expect(message).toContain('already given to client "a"');
    }
  });

  plainTest("IX_API_KEYS refuses what would silently weaken auth: empty entries, whitespace in a key, keys under 24 characters", () => {
    const problemsOf = (value: string): string[] => {
      try {
        parseApiEnv({ IX_API_KEYS: value });
      } catch (error) {
        return (error as ConfigError).problems.map((p) => `${p.variable}: ${p.message}`);
      }
      return [];
    };
    // A lone comma used to parse as "no keys", which turns auth off.
    expect(problemsOf(",")).toEqual([
      "IX_API_KEYS: pair 1 is empty (a stray comma?); every entry must be client_id:key",
      "IX_API_KEYS: pair 2 is empty (a stray comma?); every entry must be client_id:key",
    ]);
    expect(problemsOf(" ")).toHaveLength(1);
    expect(problemsOf(`${KEYS_ENV},`)).toEqual([expect.stringMatching(/^IX_API_KEYS: pair 3 is empty/)]);
    // A key with a space can never be presented as one bearer token.
    expect(problemsOf("alice:correct horse battery staple!!")).toEqual([
      "IX_API_KEYS: pair 1: the key contains whitespace, which a bearer token cannot carry",
    ]);
    expect(problemsOf(`alice:${"k".repeat(23)}`)).toEqual([
      "IX_API_KEYS: pair 1: the key (after the colon) must be at least 24 characters",
    ]);
    expect(problemsOf(`alice:${"k".repeat(24)}`)).toEqual([]);
  });

  plainTest("a pair written key-first never echoes the key", () => {
    const secret = "alice-key-4f7a9c2e1b8d6f3a0c5e";
    let message = "";
    try {
      parseApiEnv({ IX_API_KEYS: `${secret}:alice` });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/IX_API_KEYS: pair 1: the key \(after the colon\) must be at least 24 characters/);
    expect(message).not.toContain(secret);
    expect(message).not.toContain("alice-key");
  });

  plainTest("the schema's keys are the variable names (for docs and the CLI)", () => {
    expect(Object.keys(ApiEnv.shape)).toEqual(
      expect.arrayContaining(["IX_POSTGRES_URL", "IX_API_HOST", "IX_API_PORT", "IX_API_KEYS", "IX_API_BODY_LIMIT_BYTES"]),
    );
    expect(Object.keys(ApiEnv.shape).every((name) => name.startsWith("IX_"))).toBe(true);
  });
});

describe("binding without keys", () => {
  plainTest("only loopback addresses are allowed", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1"]) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "example.com", "128.0.0.1"]) {
      expect(isLoopbackHost(host)).toBe(false);
      expect(() => assertSafeBind({ host, apiKeys: [], adminKeys: [] })).toThrow(/IX_API_KEYS/);
      expect(() => assertSafeBind({ host, apiKeys: KEYS, adminKeys: [] })).not.toThrow();
      expect(() => assertSafeBind({ host, apiKeys: [], adminKeys: KEYS })).not.toThrow();
    }
  });

  plainTest("runApiMain refuses 0.0.0.0 without keys before connecting anywhere", async () => {
    // The URL names a port nothing listens on: reaching it would fail differently.
    const env = parseApiEnv({ IX_POSTGRES_URL: "postgres://postgres@127.0.0.1:1/none", IX_API_HOST: "0.0.0.0" });
    await expect(runApiMain({ env })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without IX_API_KEYS/);
  });

  plainTest("runApiMain needs IX_POSTGRES_URL", async () => {
    await expect(runApiMain({ env: parseApiEnv({}) })).rejects.toThrow(/IX_POSTGRES_URL/);
  });
});

describe("ix api as a process", () => {
  test("serves from its environment and exits 0 on SIGTERM", async ({ database: { url } }) => {
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
    const child = spawn(tsx, ["--conditions=source", fileURLToPath(new URL("./serve-api.ts", import.meta.url))], {
      env: { PATH: process.env.PATH, IX_POSTGRES_URL: url, IX_API_PORT: "0", IX_API_KEYS: KEYS_ENV, IX_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: Array<Record<string, unknown>> = [];
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const listening = new Promise<string>((resolve, reject) => {
      let buffered = "";
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
          buffered = buffered.slice(nl + 1);
          lines.push(line);
          if (line.msg === "ix api listening") resolve(String(line.url));
        }
      });
      child.once("exit", (code) => reject(new Error(`ix api exited ${code} before listening: ${stderr}`)));
    });
    try {
      const base = await listening;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const unauthenticated = await fetch(`${base}/jobs`);
      expect(unauthenticated.status).toBe(401);
      const listed = await fetch(`${base}/jobs`, { headers: { authorization: `Bearer ${KEYS[0]?.key}` } });
      expect(listed.status).toBe(200);

      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = await exited;
      expect(code).toBe(0);
      expect(lines.map((line) => line.msg)).toContain("ix api stopped");
      expect(lines.every((line) => !JSON.stringify(line).includes(String(KEYS[0]?.key)))).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
