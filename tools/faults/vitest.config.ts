import { mergeConfig } from "vitest/config";
import { defineIxConfig } from "../../vitest.shared.ts";

// The faults start worker processes and stop PostgreSQL; run one file at a
// time on the 2-core CI machine, so one fault's load never becomes another's fault.
export default mergeConfig(defineIxConfig(import.meta.dirname, { database: true }), { test: { fileParallelism: false } });
