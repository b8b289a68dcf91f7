import { ConfigError } from "@ix/contracts";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import {
  createCallbackTargetPolicy,
  DEFAULT_WORKER_CONFIG,
  nonPublicRange,
  parseWebhookSecret,
  parseWorkerEnv,
  webhookHeaders,
  workerConfigFromEnv,
} from "../src/index.ts";

const SECRET = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;

function configError(env: Record<string, string>): ConfigError {
  try {
    parseWorkerEnv(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseWorkerEnv", () => {
  it("defaults match the README and the config defaults", () => {
    const config = workerConfigFromEnv(parseWorkerEnv({}));
    expect(config).toEqual({ ...DEFAULT_WORKER_CONFIG, callback: { ...DEFAULT_WORKER_CONFIG.callback, allowedHosts: [] } });
    expect(config).toMatchObject({ concurrency: 4, pipelineTimeoutSeconds: 60, maxAttempts: 3, sweepIntervalSeconds: 30 });
    expect(config.callback).toMatchObject({ timeoutSeconds: 10, secret: null, allowedHosts: [] });
  });

  it("reads every variable", () => {
    const env = parseWorkerEnv({
      IX_POSTGRES_URL: "postgres://u@db:5432/ix",
      IX_WORKER_CONCURRENCY: "16",
      IX_WORKER_PREFETCH: "64",
      IX_PIPELINE_REQUEST_TIMEOUT_SECONDS: "5",
      IX_MAX_ATTEMPTS: "5",
      IX_SWEEP_INTERVAL_SECONDS: "7",
      IX_PIPELINE_MODULES: "./a.js, @acme/pipelines",
      IX_CALLBACK_SECRET: SECRET,
      IX_CALLBACK_TIMEOUT_SECONDS: "3",
      IX_CALLBACK_ALLOWED_HOSTS: "127.0.0.1, 10.1.0.0/16, hooks.internal, fd00::/8",
      IX_CALLBACK_MAX_ATTEMPTS: "4",
      IX_CALLBACK_RETRY_BASE_SECONDS: "1",
      IX_CALLBACK_RETRY_MAX_SECONDS: "60",
      IX_WORKER_POLL_INTERVAL_SECONDS: "0.5",
      IX_SHUTDOWN_GRACE_SECONDS: "20",
      IX_LOG_LEVEL: "debug",
      IX_CALLBACK_HOST_CONCURRENCY: "3",
      IX_CALLBACK_BREAKER_FAILURES: "7",
      IX_CALLBACK_BREAKER_COOLDOWN_SECONDS: "90",
      IX_CALLBACK_PROXY_URL: "http://user:pw@egress.internal:4750",
      IX_LEASE_SECONDS: "12",
      IX_WORKER_USE_CASES: " ocr , llm,ocr",
      IX_USE_CASE_CONCURRENCY: "ocr:4, llm:16",
    });
    expect(env.IX_PIPELINE_MODULES).toEqual(["./a.js", "@acme/pipelines"]);
    const config = workerConfigFromEnv(env);
    expect(config).toMatchObject({
      concurrency: 16,
      prefetch: 64,
      pipelineTimeoutSeconds: 5,
      maxAttempts: 5,
      sweepIntervalSeconds: 7,
      pollIntervalSeconds: 0.5,
      shutdownGraceSeconds: 20,
      leaseSeconds: 12,
      useCases: ["ocr", "llm"],
      useCaseConcurrency: { ocr: 4, llm: 16 },
    });
    expect(config.callback).toMatchObject({
      timeoutSeconds: 3,
      allowedHosts: ["127.0.0.1", "10.1.0.0/16", "hooks.internal", "fd00::/8"],
      maxAttempts: 4,
      retryBaseSeconds: 1,
      retryMaxSeconds: 60,
      hostConcurrency: 3,
      breaker: { failures: 7, cooldownSeconds: 90 },
      proxyUrl: "http://user:pw@egress.internal:4750",
    });
    expect(config.callback.secret).toEqual(Buffer.alloc(32, 7));
  });

  it.each([
    ["secret_without_prefix", /must start with "whsec_"/],
    ["whsec_", /followed by standard base64/],
    ["whsec_not base64!", /followed by standard base64/],
    [`whsec_${Buffer.alloc(8).toString("base64")}`, /at least 16 bytes, got 8/],
  ])("IX_CALLBACK_SECRET=%s is a ConfigError naming it, never echoing the key", (value, message) => {
    const error = configError({ IX_CALLBACK_SECRET: value });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]?.variable).toBe("IX_CALLBACK_SECRET");
    expect(error.problems[0]?.message).toMatch(message);
    if (value.length > 10) expect(error.message).not.toContain(value);
  });

  it.each([
    ["10.0.0.0/33", /"10\.0\.0\.0\/33" is not a valid CIDR range/],
    ["not a host", /"not a host" is neither a hostname, an IP address nor a CIDR range/],
  ])("IX_CALLBACK_ALLOWED_HOSTS=%s names the bad entry", (value, message) => {
    const error = configError({ IX_CALLBACK_ALLOWED_HOSTS: value });
    expect(error.problems[0]?.variable).toBe("IX_CALLBACK_ALLOWED_HOSTS");
    expect(error.problems[0]?.message).toMatch(message);
  });

  it.each(["socks5://user:secret-pw@proxy:1080", "egress.internal:4750"])(
    "IX_CALLBACK_PROXY_URL=%s is refused without echoing it (it may hold a password)",
    (value) => {
      const error = configError({ IX_CALLBACK_PROXY_URL: value });
      expect(error.problems).toEqual([{ variable: "IX_CALLBACK_PROXY_URL", message: "must be an http:// or https:// URL of the proxy" }]);
      expect(error.message).not.toContain(value);
    },
  );

  it("IX_POSTGRES_POOL_MODE and IX_LISTEN_URL: the pool mode and the LISTEN connection's URL; bad values name the variable", () => {
    expect(workerConfigFromEnv(parseWorkerEnv({}))).toMatchObject({ poolMode: "session", listenUrl: null });
    const config = workerConfigFromEnv(parseWorkerEnv({ IX_POSTGRES_POOL_MODE: "transaction", IX_LISTEN_URL: "postgres://ix@db:5432/ix" }));
    expect(config).toMatchObject({ poolMode: "transaction", listenUrl: "postgres://ix@db:5432/ix" });
    const error = configError({ IX_POSTGRES_POOL_MODE: "statement", IX_LISTEN_URL: "mysql://db/ix" });
    expect(error.problems.map((p) => p.variable).sort()).toEqual(["IX_LISTEN_URL", "IX_POSTGRES_POOL_MODE"]);
    expect(error.problems.find((p) => p.variable === "IX_POSTGRES_POOL_MODE")?.message).toMatch(/session.*transaction/);
  });

  it("IX_WORKER_USE_CASES unset claims every registered pipeline's use_case; no caps unless IX_USE_CASE_CONCURRENCY", () => {
    expect(workerConfigFromEnv(parseWorkerEnv({}))).toMatchObject({ useCases: null, useCaseConcurrency: {} });
    expect(workerConfigFromEnv(parseWorkerEnv({ IX_USE_CASE_CONCURRENCY: "" })).useCaseConcurrency).toEqual({});
  });

  it.each([
    ["", "names no use_case; unset it to claim every registered pipeline's jobs"],
    ["   ", "names no use_case; unset it to claim every registered pipeline's jobs"],
    ["ocr,,llm", "entry 2 is empty (a stray comma?)"],
    ["ocr,", "entry 2 is empty (a stray comma?)"],
  ])("IX_WORKER_USE_CASES=%j is refused: %s", (value, message) => {
    expect(configError({ IX_WORKER_USE_CASES: value }).problems).toEqual([{ variable: "IX_WORKER_USE_CASES", message }]);
  });

  it.each([
    ["ocr=4", '"ocr=4" is not use_case:limit, e.g. ocr:4'],
    ["ocr:4,,llm:2", "entry 2 is empty (a stray comma?); every entry must be use_case:limit, e.g. ocr:4"],
    ["ocr:0", '"ocr:0": the limit must be a whole number from 1 to 100000'],
    ["ocr:-2", '"ocr:-2": the limit must be a whole number from 1 to 100000'],
    ["ocr:2.5", '"ocr:2.5": the limit must be a whole number from 1 to 100000'],
    ["ocr:", '"ocr:": the limit must be a whole number from 1 to 100000'],
    ["OCR:4", '"OCR:4": "OCR" is not a use_case name (^[a-z0-9][a-z0-9_.-]*$, 1-64 characters)'],
    [":4", '":4": "" is not a use_case name (^[a-z0-9][a-z0-9_.-]*$, 1-64 characters)'],
    ["ocr:4,llm:16,ocr:8", '"ocr:8": ocr is already capped (at 4)'],
  ])("IX_USE_CASE_CONCURRENCY=%s is refused naming the bad entry", (value, message) => {
    expect(configError({ IX_USE_CASE_CONCURRENCY: value }).problems).toEqual([{ variable: "IX_USE_CASE_CONCURRENCY", message }]);
  });

  it("names every bad variable at once", () => {
    const error = configError({ IX_WORKER_CONCURRENCY: "0", IX_POSTGRES_URL: "mysql://x", IX_CALLBACK_TIMEOUT_SECONDS: "soon" });
    expect(error.problems.map((p) => p.variable).sort()).toEqual([
      "IX_CALLBACK_TIMEOUT_SECONDS",
      "IX_POSTGRES_URL",
      "IX_WORKER_CONCURRENCY",
    ]);
  });
});

describe("webhook signature", () => {
  it("verifies with the standardwebhooks package as a receiver would", () => {
    const parsed = parseWebhookSecret(SECRET);
    if (!parsed.ok) throw new Error(parsed.error);
    const body = JSON.stringify({ job_id: "abc", text: "ünïcødé ✓" });
    const now = Math.floor(Date.now() / 1000);
    const headers = webhookHeaders({ key: parsed.key, id: "abc", body, timestampSeconds: now });
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(SECRET).verify(body, { ...headers })).toEqual(JSON.parse(body));
    // Tampering with the body or using another key fails verification.
    expect(() => new Webhook(SECRET).verify(`${body} `, { ...headers })).toThrow();
    const other = `whsec_${Buffer.alloc(32, 8).toString("base64")}`;
    expect(() => new Webhook(other).verify(body, { ...headers })).toThrow();
  });

  it("without a key sends id and timestamp but no signature", () => {
    expect(webhookHeaders({ key: null, id: "x", body: "{}", timestampSeconds: 5 })).toEqual({
      "webhook-id": "x",
      "webhook-timestamp": "5",
    });
  });
});

describe("callback target policy", () => {
  it.each([
    ["10.0.0.1", /private/],
    ["172.16.5.4", /private/],
    ["192.168.1.1", /private/],
    ["127.0.0.1", /loopback/],
    ["169.254.169.254", /link-local/],
    ["100.64.0.1", /CGNAT/],
    ["0.0.0.0", /unspecified/],
    ["::1", /loopback/],
    ["::", /unspecified/],
    ["::ffff:7f00:1", /IPv4-mapped/],
    ["::ffff:8.8.8.8", /IPv4-mapped/],
    ["fd12:3456::1", /unique-local/],
    ["fe80::1", /link-local/],
    ["224.0.0.1", /multicast/],
    ["168.63.129.16", /Azure platform endpoint/],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", /Teredo/],
  ])("%s is not public (%s)", (address, why) => {
    expect(nonPublicRange(address)).toMatch(why);
  });

  it.each(["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1", "172.32.0.1", "168.63.129.17", "2001:4860:4860::8888"])("%s is public", (address) => {
    expect(nonPublicRange(address)).toBeNull();
  });

  it("allows what IX_CALLBACK_ALLOWED_HOSTS names: addresses, ranges and hostnames", () => {
    const policy = createCallbackTargetPolicy(["127.0.0.1", "10.1.0.0/16", "Hooks.Internal", "fd00::/8"]);
    expect(policy.refusal("127.0.0.1", "127.0.0.1")).toBeNull();
    expect(policy.refusal("10.1.2.3", "10.1.2.3")).toBeNull();
    expect(policy.refusal("hooks.internal", "10.9.9.9")).toBeNull();
    expect(policy.refusal("[fd00::5]", "fd00::5")).toBeNull();
    expect(policy.refusal("10.2.0.1", "10.2.0.1")).toMatch(
      /^callback target 10\.2\.0\.1 is private \(10\.0\.0\.0\/8\), which is refused; allow it with IX_CALLBACK_ALLOWED_HOSTS$/,
    );
    expect(policy.refusal("evil.example", "127.0.0.2")).toMatch(/callback target evil\.example \(127\.0\.0\.2\) is loopback/);
  });
});
