import { fileURLToPath } from "node:url";
import { basename } from "node:path";
import { defineConfig, type ViteUserConfig } from "vitest/config";

/**
 * The one vitest configuration every package uses. Packages with database
 * tests get the global setup that provisions PostgreSQL once per run and a
 * migrated template (see packages/testing). Under CI a JSON report
 * per package lands in .ci-results/ so .ci/run can print the totals.
 */
export function defineIxConfig(packageDir: string, { database }: { database: boolean }): ViteUserConfig {
  const name = basename(packageDir);
  // Workspace packages resolve to their TypeScript source (the "source" export condition), so nothing is built to test.
  const conditions = ["source", "node", "development|production"];
  return defineConfig({
    resolve: { conditions },
    ssr: { resolve: { conditions } },
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
