import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type IxClient } from "@ix/client";
import { freePort } from "@ix/provision";
import { test as base } from "@ix/testing";
import { launchChromium } from "./chromium.ts";
import { type RunningIx, startIx } from "./ix-start.ts";

/** The operator's key (IX_ADMIN_KEYS, as `ops`): what signs in to the dashboard. */
export const ADMIN_KEY = "operator-key-0123456789abcdef";
/** The client `billing`'s key (IX_API_KEYS): it submits jobs, and the dashboard refuses it. */
export const CLIENT_KEY = "billing-key-0123456789abcdef";

export interface Dashboard {
  /** `ix start` on the test's database, serving the API and the dashboard at `ix.base`. */
  ix: RunningIx;
  /** A fresh headless Chromium. */
  chromium: Awaited<ReturnType<typeof launchChromium>>;
  /** @ix/client with CLIENT_KEY: how the tests submit jobs, as a client service would. */
  client: IxClient;
  /** ix's IX_STATE_DIR, removed afterwards; the `flaky` pipeline's markers go here too. */
  dir: string;
}

/**
 * @ix/testing's `test` with a `dashboard` fixture: the real `ix start` on the test's database (with
 * ADMIN_KEY and CLIENT_KEY, and the `flaky` pipeline) and a Chromium, both stopped when the test ends.
 * A test that does not ask for it starts neither.
 */
export const test = base.extend<{ dashboard: Dashboard }>({
  dashboard: async ({ database: { url } }, use) => {
    const dir = await mkdtemp(join(tmpdir(), "ix-ui-e2e-"));
    try {
      const ix = await startIx({
        postgresUrl: url,
        port: await freePort(),
        env: { IX_API_KEYS: `billing:${CLIENT_KEY}`, IX_ADMIN_KEYS: `ops:${ADMIN_KEY}`, IX_STATE_DIR: dir },
      });
      try {
        const chromium = await launchChromium();
        try {
          await use({ ix, chromium, client: createClient({ baseUrl: ix.base, apiKey: CLIENT_KEY }), dir });
        } finally {
          await chromium.close();
        }
      } finally {
        await ix.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
});
