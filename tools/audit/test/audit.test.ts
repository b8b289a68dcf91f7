import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type Advisory, AdvisoryList, audit, lockedPackages, splitPackageKey } from "../src/audit.ts";

const root = new URL("../../../", import.meta.url);
const repositoryLockfile = readFileSync(new URL("pnpm-lock.yaml", root), "utf8");
const { advisories } = AdvisoryList.parse(JSON.parse(readFileSync(new URL("tools/audit/advisories.json", root), "utf8")));

/** A lockfile as pnpm 9+ writes it: a toolchain document, then the project's. */
function lockfile(keys: string[]): string {
  const entries = keys.map((key) => `  '${key}':\n    resolution: {integrity: sha512-x}\n`).join("\n");
  return `---\nlockfileVersion: '9.0'\n\nimporters:\n  .: {}\n\npackages:\n\n  'pnpm@12.4.2':\n    resolution: {integrity: sha512-y}\n\n---\nlockfileVersion: '9.0'\n\nimporters:\n  .: {}\n\npackages:\n\n${entries}\nsnapshots:\n\n${keys.map((key) => `  '${key}': {}\n`).join("")}`;
}

describe("the offline dependency audit", () => {
  it("passes the repository's lockfile, and actually reads it", () => {
    expect(audit(repositoryLockfile, advisories)).toEqual([]);
    const locked = lockedPackages(repositoryLockfile);
    expect(locked.get("fastify")?.size).toBeGreaterThan(0);
    expect(locked.get("@fastify/static")?.size).toBe(1);
  });

  it("fails a lockfile that resolves @fastify/static 9.3.0, as @fastify/swagger-ui 5.2.6 did, naming both advisories", () => {
    const findings = audit(lockfile(["@fastify/swagger-ui@5.2.6", "@fastify/static@9.3.0", "fastify@5.6.2"]), advisories);
    expect(findings.map((f) => `${f.advisory.id} ${f.version}`).sort()).toEqual([
      "GHSA-83w8-p2f5-377r 9.3.0",
      "GHSA-8pvw-jcv7-9cmj 9.3.0",
    ]);
  });

  it("checks every version a lockfile holds, snapshot keys with peer suffixes included", () => {
    const text = lockfile(["@fastify/static@8.2.0(supports-color@7.2.0)", "@fastify/static@10.1.2", "/legacy-key@1.0.0"]);
    expect([...(lockedPackages(text).get("@fastify/static") ?? [])].sort()).toEqual(["10.1.2", "8.2.0"]);
    expect(lockedPackages(text).get("legacy-key")).toEqual(new Set(["1.0.0"]));
    // 8.2.0 is in all three ranges; 10.1.2 in none.
    expect(audit(text, advisories).map((f) => f.version)).toEqual(["8.2.0", "8.2.0", "8.2.0"]);
  });

  it("a prerelease inside a range is caught", () => {
    const advisory: Advisory = { id: "CVE-2026-0001", package: "left-pad", vulnerable: "<2.0.0", summary: "test", added: "2026-11-28" };
    expect(audit(lockfile(["left-pad@2.0.0-rc.1"]), [advisory])).toHaveLength(1);
    expect(audit(lockfile(["left-pad@2.0.0"]), [advisory])).toHaveLength(0);
  });

  it("refuses a malformed list entry instead of silently matching nothing", () => {
    const bad = { advisories: [{ id: "GHSA-83w8-p2f5-377r", package: "x", vulnerable: "not a range", summary: "s", added: "2026-11-28" }] };
    expect(AdvisoryList.safeParse(bad).success).toBe(false);
    expect(splitPackageKey("no-version")).toBeNull();
  });
});
