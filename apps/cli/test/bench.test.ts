import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findBenchHarness } from "../src/commands/bench.ts";
import { REPOSITORY_ROOT } from "../src/repository.ts";
import { runIx } from "./run-ix.ts";

// `ix bench` does not import the harness (apps never import tools); it finds
// tools/bench in the workspace and runs it, so these check the finding and the hand-over.

describe("ix bench", () => {
  it("finds the harness in this repository, and none outside a workspace or in one without tools/bench", async () => {
    expect(findBenchHarness()).toBe(join(REPOSITORY_ROOT, "tools", "bench", "src", "main.ts"));

    const outside = await mkdtemp(join(tmpdir(), "ix-cli-bench-"));
    await mkdir(join(outside, "lib", "ix"), { recursive: true });
    expect(findBenchHarness(join(outside, "lib", "ix", "main.js"))).toBeNull();

    await writeFile(join(outside, "pnpm-workspace.yaml"), "packages:\n  - lib/*\n");
    expect(findBenchHarness(join(outside, "lib", "ix", "main.js"))).toBeNull();
  });

  it("--help explains the hand-over and lists the harness's options, exiting 0", async () => {
    const result = await runIx(["bench", "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: ix bench");
    expect(result.stdout).toContain("exits 1");
    for (const flag of ["--n", "--c", "--l", "--http-seconds", "--scale-rows", "--systems", "--database-url", "--json-out"]) {
      expect(result.stdout).toContain(flag);
    }
  });

  it("passes the arguments on: the harness's own checks answer bad values with exit 2", async () => {
    const zero = await runIx(["bench", "--n", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain("--n");

    const system = await runIx(["bench", "--systems", "ix,frobnicate"]);
    expect(system.code).toBe(2);
    expect(system.stderr).toContain("frobnicate");

    const url = await runIx(["bench", "--http-seconds", "0"], { IX_POSTGRES_URL: "http://not-postgres" });
    expect(url.code).toBe(2);
    expect(url.stderr).toContain("IX_POSTGRES_URL");
  });
});
