import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SubmitJobInput } from "@ix/contracts";
import { jobs } from "@ix/store";
import { insertJob, registerTestWorker, sampleRequest, waitFor } from "@ix/testing";
import { ADMIN_KEY, test } from "../src/fixture.ts";

// `pnpm --filter @ix/ui-e2e screenshots` writes docs/ui-overview.png and docs/ui-job.png: the real
// `ix start` and Chromium, on a fresh test database holding an hour of synthetic history (rows
// inserted with past timestamps, so the charts have something to show) plus real jobs run by ix.

const DOCS = fileURLToPath(new URL("../../../docs/", import.meta.url));

test("dashboard screenshots", async ({ database: { db }, dashboard: { ix, chromium, client, dir } }) => {
  // An hour of history: per minute a varying load, a few failures, waits that grow with the load.
  const now = Date.now();
  const clients = ["billing", "search", "crm"];
  for (let minute = 59; minute >= 1; minute--) {
    const load = Math.round(8 + 6 * Math.sin(minute / 6) + (minute % 7));
    for (let i = 0; i < load; i++) {
      const finished = new Date(now - minute * 60_000 + i * 1_000);
      const waitMs = 40 + load * 25 + ((i * 37) % 200);
      const runAt = new Date(finished.getTime() - 900 - waitMs);
      await insertJob(db, {
        request: sampleRequest({ ix_client_id: clients[i % 3]!, use_case: i % 4 === 0 ? "flaky" : "extract_fields" }),
        status: (minute * 31 + i) % 23 === 0 ? "error" : "done",
        createdAt: runAt,
        runAt,
        startedAt: new Date(runAt.getTime() + waitMs),
        finishedAt: finished,
      });
    }
  }
  await registerTestWorker(db, ["extract_fields", "flaky"], { host: "gpu-1", concurrency: 8 });

  const submit = async (body: Omit<SubmitJobInput, "ix_client_id" | "context">) =>
    (await client.submit({ ix_client_id: "billing", context: { texts: ["Invoice 42 <b>ACME</b>, total 10.00 EUR"] }, ...body })).job;

  // A job that fails, is retried and succeeds, whose callback receiver is down.
  const shown = await submit({
    use_case: "flaky",
    request_id: "scan-2026-0042",
    options: { marker: join(dir, "scan.marker") },
    callback_url: "http://127.0.0.1:9/ix-callback",
  });
  for (let i = 0; i < 6; i++) await submit({ use_case: "extract_fields", request_id: `later-${i}`, run_at: new Date(now + 3_600_000).toISOString() });
  await waitFor("the first run to fail", async () => (await jobs.get(db, shown.job_id))?.status === "error");
  await jobs.retry(db, { jobId: shown.job_id });
  await waitFor("the retry to be done", async () => (await jobs.get(db, shown.job_id))?.status === "done");
  await waitFor("a callback attempt to fail", async () => ((await jobs.inspect(db, shown.job_id))?.callback.attempts ?? 0) >= 1, { timeoutMs: 30_000 });

  const page = await chromium.context.newPage();
  await page.goto(`${ix.base}/ui/login`);
  await page.getByLabel("Operator key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${ix.base}/ui`);
  await page.screenshot({ path: join(DOCS, "ui-overview.png"), fullPage: true });
  await page.goto(`${ix.base}/ui/jobs/${shown.job_id}`);
  await page.screenshot({ path: join(DOCS, "ui-job.png"), fullPage: true });
});
