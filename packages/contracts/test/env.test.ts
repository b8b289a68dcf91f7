import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, envDefault, envVar, optionalEnv, parseEnv } from "../src/index.ts";

const Env = z.object({
  IX_WORKER_CONCURRENCY: envDefault(envVar.int(1, 1024), 4),
  IX_SWEEP_INTERVAL_SECONDS: envDefault(envVar.seconds(), 30),
  IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()),
  IX_PIPELINE_MODULES: envDefault(envVar.list(), []),
});

describe("parseEnv", () => {
  it("applies defaults for unset and empty variables", () => {
    expect(parseEnv(Env, { IX_WORKER_CONCURRENCY: "" })).toEqual({
      IX_WORKER_CONCURRENCY: 4,
      IX_SWEEP_INTERVAL_SECONDS: 30,
      IX_POSTGRES_URL: undefined,
      IX_PIPELINE_MODULES: [],
    });
  });

  it("parses set variables", () => {
    expect(
      parseEnv(Env, {
        IX_WORKER_CONCURRENCY: " 16 ",
        IX_SWEEP_INTERVAL_SECONDS: "0.5",
        IX_POSTGRES_URL: "postgres://u@h:5432/db",
        IX_PIPELINE_MODULES: "a, ./b.js,,",
      }),
    ).toEqual({
      IX_WORKER_CONCURRENCY: 16,
      IX_SWEEP_INTERVAL_SECONDS: 0.5,
      IX_POSTGRES_URL: "postgres://u@h:5432/db",
      IX_PIPELINE_MODULES: ["a", "./b.js"],
    });
  });

  it("names every bad variable", () => {
    const error = (() => {
      try {
        parseEnv(Env, { IX_WORKER_CONCURRENCY: "lots", IX_POSTGRES_URL: "mysql://x", IX_SWEEP_INTERVAL_SECONDS: "-1" });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
      "IX_POSTGRES_URL",
      "IX_SWEEP_INTERVAL_SECONDS",
      "IX_WORKER_CONCURRENCY",
    ]);
    expect((error as Error).message).toMatch(/IX_WORKER_CONCURRENCY: must be an integer/);
  });
});
