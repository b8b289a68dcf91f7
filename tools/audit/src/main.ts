// pnpm audit:deps — fails (exit 1) when pnpm-lock.yaml resolves a version listed in advisories.json.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { AdvisoryList, audit, describeFinding, lockedPackages } from "./audit.ts";

const lockfilePath = fileURLToPath(new URL("../../../pnpm-lock.yaml", import.meta.url));
const listPath = fileURLToPath(new URL("../advisories.json", import.meta.url));

const lockfile = readFileSync(lockfilePath, "utf8");
const { advisories } = AdvisoryList.parse(JSON.parse(readFileSync(listPath, "utf8")));
const findings = audit(lockfile, advisories);
const packages = lockedPackages(lockfile);
const versions = [...packages.values()].reduce((n, set) => n + set.size, 0);
if (findings.length > 0) {
  console.error(`${findings.length} locked package version(s) with a published advisory:`);
  for (const finding of findings) console.error(`  ${describeFinding(finding)}`);
  console.error("Upgrade them (or the packages that pull them in) and run pnpm install.");
  process.exitCode = 1;
} else {
  console.log(`audit: ${versions} locked versions of ${packages.size} packages checked against ${advisories.length} advisories: none affected`);
}
