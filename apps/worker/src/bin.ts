import { ConfigError } from "@ix/contracts";
import { runWorkerMain } from "./main.ts";

// Standalone entry: `node --conditions=source --import tsx apps/worker/src/bin.ts`, or compiled `node apps/worker/dist/bin.js` (the CLI's `ix worker` does the same).
try {
  await runWorkerMain();
  process.exit(0);
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
}
