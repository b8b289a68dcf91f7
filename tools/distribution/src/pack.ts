import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./repository.ts";

const run = promisify(execFile);

export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  [field: string]: unknown;
}

export interface Packed {
  name: string;
  /** Absolute path of the tarball. */
  tarball: string;
  /** Paths inside the tarball, relative to its package/ folder. */
  files: string[];
  /** package.json as the tarball holds it. */
  manifest: Manifest;
  /** Subpaths of the workspace manifest's exports map (".", "./callback-target"). */
  subpaths: string[];
}

/** `pnpm pack` of the package in `dir` (relative to the repository root) into `destination`. */
export async function pack(dir: string, destination: string): Promise<Packed> {
  const cwd = join(ROOT, dir);
  const workspace = JSON.parse(await readFile(join(cwd, "package.json"), "utf8")) as Manifest;
  const { stdout } = await run("pnpm", ["pack", "--pack-destination", destination, "--json"], { cwd, timeout: 120_000 });
  const report = JSON.parse(stdout) as { name: string; filename: string; files: Array<{ path: string }> };
  const tarball = report.filename.startsWith("/") ? report.filename : join(destination, report.filename);
  const manifest = JSON.parse((await run("tar", ["-xOzf", tarball, "package/package.json"])).stdout) as Manifest;
  return { name: report.name, tarball, files: report.files.map((f) => f.path), manifest, subpaths: Object.keys(workspace.exports ?? {}) };
}

/** Every file an exports map points at (conditions nested any way). */
export function exportTargets(exports: unknown): string[] {
  if (typeof exports === "string") return [exports];
  if (exports === null || typeof exports !== "object") return [];
  return Object.values(exports).flatMap(exportTargets);
}

/** Every condition name used in an exports map. */
export function exportConditions(exports: unknown): string[] {
  if (exports === null || typeof exports !== "object") return [];
  return Object.entries(exports).flatMap(([key, value]) => [...(key.startsWith(".") ? [] : [key]), ...exportConditions(value)]);
}

/**
 * Makes `project` a package of another team's service that installs the
 * tarballs (and `extra` from the registry) with npm. Its .npmrc points the
 * @ix scope at an address where nothing answers, so every @ix package must come
 * from the tarballs: one fetched from a public registry would fail the install
 * instead of running someone else's code (README: the @ix scope). npm asks
 * that address about each @ix dependency before settling on the tarball, so its
 * retries back off in milliseconds, not npm's default tens of seconds.
 */
export async function installTarballs(project: string, tarballs: string[], extra: string[] = []): Promise<void> {
  await writeFile(join(project, "package.json"), `${JSON.stringify({ name: "acme-service", private: true, type: "module" }, null, 2)}\n`);
  await writeFile(join(project, ".npmrc"), "@ix:registry=http://127.0.0.1:9/\nfetch-retry-mintimeout=100\nfetch-retry-maxtimeout=1000\n");
  const install = () =>
    run("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", ...tarballs, ...extra], {
      cwd: project,
      timeout: 300_000,
      env: { ...outsideEnv(), npm_config_update_notifier: "false" },
    });
  try {
    await install();
  } catch (error) {
    // The registry's answers for `extra` cross a network this test does not own (a CI run once met a
    // proxy's certificate error for a moment, which npm does not retry): once more before failing.
    if (!/\b(SELF_SIGNED_CERT_IN_CHAIN|ECONNRESET|ETIMEDOUT|EAI_AGAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\b/.test(String(error))) throw error;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await install();
  }
}

/**
 * The environment of a shell outside this workspace: without what pnpm and
 * vitest set for their own children (npm_* settings, NODE_OPTIONS, IX_*).
 */
export function outsideEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(([key]) => !/^(npm_|NODE_OPTIONS$|IX_|VITEST|TURBO_)/i.test(key));
  return { ...Object.fromEntries(kept), ...extra };
}
