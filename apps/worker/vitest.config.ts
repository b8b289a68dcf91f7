import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One PostgreSQL server per run, a migrated template, a fresh database per test (see @ix/store/testing).
    globalSetup: [fileURLToPath(import.meta.resolve("@ix/store/testing/global-setup"))],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
