import { fileURLToPath } from "node:url";
import { basename } from "node:path";
import { defineConfig, type ViteUserConfig } from "vitest/config";

/**
 * Workspace packages resolve to their TypeScript sources (the `source` export
 * condition), so tests need no build; the others are Vite's defaults for a
 * server. Vitest starts its workers with the same conditions, so Node's own
 * resolver agrees (the worker's pipeline threads); a child process a test
 * starts from sources is given `--conditions=source` itself.
 */
const CONDITIONS = ["source", "module", "node", "development|production"];

/**
 * The one vitest configuration every package uses. Packages with database
 * tests get the global setup that provisions PostgreSQL once per run and a
 * migrated template (see packages/testing). Under CI a JSON report
 * per package lands in .ci-results/ so .ci/run can print the totals.
 */
export function defineIxConfig(packageDir: string, { database }: { database: boolean }): ViteUserConfig {
  const name = basename(packageDir);
  return defineConfig({
    // Every Vite environment: the tests' (ssr) and the one global setups run in.
    plugins: [{ name: "ix:source-condition", configEnvironment: () => ({ resolve: { conditions: CONDITIONS } }) }],
    test: {
      include: ["test/**/*.test.ts"],
      globalSetup: database ? [fileURLToPath(import.meta.resolve("./packages/testing/src/global-setup.ts"))] : [],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      reporters: process.env.CI ? ["default", "json"] : ["default"],
      outputFile: { json: fileURLToPath(new URL(`./.ci-results/${name}.json`, import.meta.url)) },
    },
  });
}
