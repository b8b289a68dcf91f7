import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

/** Debian's Chromium, which CI installs (`apt-get install chromium`); playwright-core downloads no browser. */
export const CHROMIUM = "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/**
 * A fresh headless Chromium with its own profile directory, removed by `close`. Throws, rather than
 * skipping, when Chromium is not installed: a browser test that does not run proves nothing.
 */
export async function launchChromium(executablePath = CHROMIUM): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium is not installed at ${executablePath}: the dashboard's browser tests need it (Debian: apt-get install chromium; .ci/run installs it)`,
    );
  }
  const profile = await mkdtemp(join(tmpdir(), "ix-ui-e2e-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
