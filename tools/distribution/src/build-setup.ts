import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./repository.ts";

/**
 * vitest global setup: builds every package this one depends on (the apps and
 * the packages it packs) to dist/. turbo rebuilds only what changed since the
 * last build, so after `pnpm build` (as in .ci/run) this takes a second.
 */
export default function buildDist(): void {
  execFileSync(join(ROOT, "node_modules", ".bin", "turbo"), ["run", "build", "--filter=@ix/distribution^...", "--output-logs=errors-only"], {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 600_000,
  });
}
