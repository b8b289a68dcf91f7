import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WorkerEnv } from "../src/index.ts";

describe("README", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

  it("documents every variable the worker reads, and no other", () => {
    const documented = new Set([...readme.matchAll(/^\| `(IX_[A-Z_]+)`/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual(Object.keys(WorkerEnv.shape).sort());
  });
});
