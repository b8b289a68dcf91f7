import { join } from "node:path";
import type { Job, SubmitJobInput } from "@ix/contracts";
import { jobs } from "@ix/store";
import { waitFor } from "@ix/testing";
import type { Page } from "playwright-core";
import { describe, expect } from "vitest";
import { launchChromium } from "../src/chromium.ts";
import { ADMIN_KEY, CLIENT_KEY, type Dashboard, test } from "../src/fixture.ts";

// The dashboard in a real browser (Debian's Chromium through playwright-core) against the real
// `ix start` (API, worker and dashboard in one process) on the test database, with real jobs.

/** Submits a new job of client `billing` through @ix/client, as a client service would. */
async function submit({ client }: Dashboard, body: Omit<SubmitJobInput, "ix_client_id" | "context">): Promise<Job> {
  const { status, job } = await client.submit({ ix_client_id: "billing", context: { texts: ["Invoice 42, total 10.00 EUR"] }, ...body });
  expect(status).toBe(201);
  return job;
}

async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/ui`);
  await page.waitForURL(`${base}/ui/login`);
  await page.getByLabel("Operator key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

describe("the dashboard in Chromium", () => {
  test("without Chromium the browser tests fail, saying what to install", async () => {
    await expect(launchChromium("/nonexistent/chromium")).rejects.toThrow(
      "Chromium is not installed at /nonexistent/chromium: the dashboard's browser tests need it (Debian: apt-get install chromium",
    );
  });

  test("sign in, overview, filter to a failed job, retry it to done, cancel a pending job; a client key is refused", async ({
    database: { db },
    dashboard,
  }) => {
    const { ix, chromium, dir } = dashboard;
    expect(ix.output()).toContain(`dashboard ${ix.base}/ui (sign in with a key from IX_ADMIN_KEYS)`);
    // Real data: a job that fails its first run, one that succeeds, one due tomorrow.
    const failing = await submit(dashboard, { use_case: "flaky", request_id: "scan-7", options: { marker: join(dir, "scan-7.marker") } });
    await submit(dashboard, { use_case: "extract_fields", request_id: "inv-1", options: { fields: { total: "\\d+\\.\\d{2}" } } });
    const later = await submit(dashboard, { use_case: "extract_fields", request_id: "inv-2", run_at: new Date(Date.now() + 86_400_000).toISOString() });
    await waitFor("the flaky job to fail", async () => (await jobs.get(db, failing.job_id))?.status === "error");

    const page = await chromium.context.newPage();

    // A client key cannot sign in, and the page says why.
    await signIn(page, ix.base, CLIENT_KEY);
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("That is a client key (IX_API_KEYS)");
    expect(page.url()).toBe(`${ix.base}/ui/login`);
    expect((await chromium.context.cookies()).filter((c) => c.name === "ix_session")).toEqual([]);

    // An operator signs in and sees the overview: the failed job counted, the worker live.
    await page.getByLabel("Operator key").fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${ix.base}/ui`);
    await expect.poll(() => page.locator("header .who").textContent()).toContain("signed in as ops");
    const [cookie] = (await chromium.context.cookies()).filter((c) => c.name === "ix_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/ui", secure: false });
    const flakyRow = page.locator("table.counts tbody tr", { has: page.locator("th", { hasText: /^flaky$/ }) });
    expect(await flakyRow.locator("td").nth(3).textContent()).toBe("1"); // the error column
    expect(await page.locator("section", { hasText: "Live workers" }).locator("tbody tr").count()).toBe(1);
    expect(await page.locator("figure.chart").count()).toBe(2);

    // Filter to failed flaky jobs and open the one there is.
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByLabel("status").selectOption("error");
    await page.getByLabel("use_case").fill("flaky");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/\/ui\/jobs\?client=&status=error&use_case=flaky/);
    const rows = page.locator("table.jobs tbody tr");
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain("scan-7");
    await rows.first().getByRole("link").click();
    await page.waitForURL(`${ix.base}/ui/jobs/${failing.job_id}`);
    expect(await page.locator("h1 .status").textContent()).toBe("error");
    expect(await page.locator("section", { hasText: "Failed runs" }).textContent()).toContain("the upstream OCR service refused the document");

    // Retry it: it runs again, succeeds, and the page shows done.
    await page.getByRole("button", { name: "Retry job" }).click();
    await page.waitForURL(`${ix.base}/ui/jobs/${failing.job_id}?notice=retried`);
    expect(await page.getByRole("status").textContent()).toContain("Retried");
    await waitFor("the retried job to be done", async () => (await jobs.get(db, failing.job_id))?.status === "done");
    await page.reload();
    expect(await page.locator("h1 .status").textContent()).toBe("done");
    expect(await page.locator("section", { hasText: "Response" }).locator("pre").textContent()).toContain('"pages": 1');

    // Cancel the job due tomorrow.
    await page.goto(`${ix.base}/ui/jobs?client=billing&request_id=inv-2`);
    await page.locator("table.jobs tbody tr").first().getByRole("link").click();
    await page.waitForURL(`${ix.base}/ui/jobs/${later.job_id}`);
    expect(await page.locator("h1 .status").textContent()).toBe("pending");
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.waitForURL(`${ix.base}/ui/jobs/${later.job_id}?notice=cancelled`);
    expect(await page.locator("h1 .status").textContent()).toBe("cancelled");
    expect((await jobs.get(db, later.job_id))!.response!.error).toBe("cancelled by an operator before it ran");
  });
});
