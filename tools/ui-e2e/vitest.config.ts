import { mergeConfig } from "vitest/config";
import { defineIxConfig } from "../../vitest.shared.ts";

// Each file starts a whole `ix start` and a Chromium: one at a time on the 2-core CI machine.
export default mergeConfig(defineIxConfig(import.meta.dirname, { database: true }), { test: { fileParallelism: false } });
