import semver from "semver";
import { parseAllDocuments } from "yaml";
import { z } from "zod";

/**
 * An offline dependency audit: every package version pnpm-lock.yaml resolves,
 * checked against a maintained list of published advisories
 * (tools/audit/advisories.json). `pnpm audit` needs the registry's bulk
 * advisory endpoint, which is not reachable from every machine that builds
 * ix; this check needs nothing but the repository.
 */

export const Advisory = z.strictObject({
  id: z.string().regex(/^(GHSA(-[23456789cfghjmpqrvwx]{4}){3}|CVE-\d{4}-\d{4,})$/, "must be a GHSA or CVE id"),
  package: z.string().min(1),
  vulnerable: z.string().refine((range) => semver.validRange(range) !== null, "must be a semver range"),
  fixed: z.string().refine((version) => semver.valid(version) !== null, "must be a version").optional(),
  summary: z.string().min(1),
  added: z.iso.date(),
});
export type Advisory = z.infer<typeof Advisory>;

export const AdvisoryList = z.object({ about: z.string().optional(), advisories: z.array(Advisory) });

export interface Finding {
  advisory: Advisory;
  /** The locked version that falls in the advisory's range. */
  version: string;
}

/** `@scope/name@1.2.3(peer@4.5.6)` → ["@scope/name", "1.2.3"]; null for what is not name@version. */
export function splitPackageKey(key: string): [string, string] | null {
  const bare = key.replace(/^\//, "").replace(/\(.*$/, "");
  const at = bare.lastIndexOf("@");
  if (at <= 0) return null;
  return [bare.slice(0, at), bare.slice(at + 1)];
}

/**
 * Every name → versions the lockfile resolves, from the `packages` and
 * `snapshots` sections of each YAML document (pnpm writes its own
 * toolchain as a first document). Versions that are not semver (links,
 * tarballs, git) are left out: no advisory range can name them.
 */
export function lockedPackages(lockfile: string): Map<string, Set<string>> {
  const locked = new Map<string, Set<string>>();
  for (const document of parseAllDocuments(lockfile)) {
    if ("errors" in document && document.errors.length > 0) throw new Error(`pnpm-lock.yaml: ${document.errors[0]?.message}`);
    const content = document.toJS() as Record<string, unknown> | null;
    for (const section of ["packages", "snapshots"] as const) {
      const entries = content?.[section];
      if (typeof entries !== "object" || entries === null) continue;
      for (const key of Object.keys(entries)) {
        const split = splitPackageKey(key);
        if (split === null || semver.valid(split[1]) === null) continue;
        const versions = locked.get(split[0]) ?? new Set<string>();
        versions.add(split[1]);
        locked.set(split[0], versions);
      }
    }
  }
  return locked;
}

export function audit(lockfile: string, advisories: readonly Advisory[]): Finding[] {
  const locked = lockedPackages(lockfile);
  const findings: Finding[] = [];
  for (const advisory of advisories) {
    for (const version of locked.get(advisory.package) ?? []) {
      if (semver.satisfies(version, advisory.vulnerable, { includePrerelease: true })) findings.push({ advisory, version });
    }
  }
  return findings;
}

export function describeFinding({ advisory, version }: Finding): string {
  const fix = advisory.fixed ? `; fixed in ${advisory.fixed}` : "";
  return `${advisory.package}@${version}: ${advisory.id} (affects ${advisory.vulnerable}${fix}) ${advisory.summary}`;
}
