import { fileURLToPath } from "node:url";
import { mergeConfig } from "vitest/config";
import { defineIxConfig } from "../../vitest.shared.ts";

// These tests run what ships (dist/, tarballs), so a global setup builds it first. They start
// processes and install packages: one file at a time on the 2-core CI machine.
export default mergeConfig(defineIxConfig(import.meta.dirname, { database: true }), {
  test: { globalSetup: [fileURLToPath(new URL("./src/build-setup.ts", import.meta.url))], fileParallelism: false },
});
