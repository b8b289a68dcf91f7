import { defineIxConfig } from "../../vitest.shared.ts";

// `pnpm --filter @ix/ui-e2e screenshots`: writes docs/ui-overview.png and docs/ui-job.png (see README.md).
// The include is replaced, not merged (mergeConfig would concatenate it with the tests').
const config = defineIxConfig(import.meta.dirname, { database: true });
export default { ...config, test: { ...config.test, include: ["screenshots/**/*.ts"], reporters: ["default"] } };
