import { jobs } from "@ix/store";
import { insertJob, registerTestWorker, sampleRequest, test } from "@ix/testing";
import { describe, expect } from "vitest";
import { KEY_A, KEYS, listeningApp } from "./fixtures.ts";

// The dashboard over real sockets: sign-in, sessions, CSRF, escaping, the pages and their actions.
// The browser test (tools/ui-e2e) drives the same pages in Chromium against `ix start`.

const ADMIN_KEY = "key-for-the-operator-0123456789";
const withKeys = { apiKeys: KEYS, adminKeys: [{ clientId: "ops", key: ADMIN_KEY }] };

interface Page {
  status: number;
  headers: Headers;
  text: string;
}

async function get(base: string, path: string, cookie?: string): Promise<Page> {
  const response = await fetch(`${base}${path}`, { redirect: "manual", headers: cookie ? { cookie } : {} });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function post(base: string, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: base, ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Signs in with `key` and returns the session cookie (name=value). */
async function signIn(base: string, key: string): Promise<string> {
  const answer = await post(base, "/ui/login", { key });
  expect(answer.status).toBe(303);
  expect(answer.headers.get("location")).toBe("/ui");
  return answer.headers.get("set-cookie")!.split(";")[0]!;
}

/** The CSRF token the page's forms carry. */
function csrfOf(page: Page): string {
  const token = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1];
  expect(token, "the page has a form with a csrf field").toBeDefined();
  return token!;
}

describe("sign-in", () => {
  test("pages need a session; an admin key signs in with a strict HttpOnly cookie; client and unknown keys are refused", async ({ database: { db } }) => {
    const { app, base } = await listeningApp(db, withKeys);
    try {
      const before = await get(base, "/ui");
      expect(before.status).toBe(303);
      expect(before.headers.get("location")).toBe("/ui/login");
      expect((await get(base, "/ui/jobs")).status).toBe(303);

      const client = await post(base, "/ui/login", { key: KEY_A });
      expect(client.status).toBe(403);
      expect(client.text).toContain("That is a client key (IX_API_KEYS). The dashboard needs an operator key from IX_ADMIN_KEYS.");
      expect(client.headers.get("set-cookie")).toBeNull();
      const unknown = await post(base, "/ui/login", { key: "y".repeat(30) });
      expect(unknown.status).toBe(401);
      expect(unknown.text).toContain("That key is not configured.");

      const login = await post(base, "/ui/login", { key: ADMIN_KEY });
      const setCookie = login.headers.get("set-cookie")!;
      expect(setCookie).toMatch(/^ix_session=[^;]+; Path=\/ui; HttpOnly; SameSite=Strict; Max-Age=43200$/);
      const cookie = setCookie.split(";")[0]!;
      const overview = await get(base, "/ui", cookie);
      expect(overview.status).toBe(200);
      expect(overview.text).toContain("signed in as <b>ops</b>");
      expect(overview.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(overview.headers.get("cache-control")).toBe("no-store");

      // Behind a TLS proxy the cookie is Secure.
      const proxied = await post(base, "/ui/login", { key: ADMIN_KEY }, { "x-forwarded-proto": "https" });
      expect(proxied.headers.get("set-cookie")).toMatch(/; Secure$/);

      // A tampered or foreign cookie is no session.
      const [name, value] = cookie.split("=") as [string, string];
      const forged = `${name}=${value.slice(0, -2)}${value.endsWith("AA") ? "BB" : "AA"}`;
      expect((await get(base, "/ui", forged)).status).toBe(303);
      const other = await listeningApp(db, withKeys);
      try {
        expect((await get(other.base, "/ui", cookie)).status).toBe(303); // another process's secret
      } finally {
        await other.app.close();
      }

      const logout = await post(base, "/ui/logout", { csrf: csrfOf(overview) }, { cookie });
      expect(logout.status).toBe(303);
      expect(logout.headers.get("set-cookie")).toContain("Max-Age=0");
    } finally {
      await app.close();
    }
  });

  test("a configured IX_UI_SESSION_SECRET keeps sessions across processes", async ({ database: { db } }) => {
    const secret = "s".repeat(40);
    const one = await listeningApp(db, { ...withKeys, uiSessionSecret: secret });
    const two = await listeningApp(db, { ...withKeys, uiSessionSecret: secret });
    try {
      const cookie = await signIn(one.base, ADMIN_KEY);
      expect((await get(two.base, "/ui", cookie)).status).toBe(200);
    } finally {
      await one.app.close();
      await two.app.close();
    }
  });

  test("without keys the dashboard is open and says so", async ({ database: { db } }) => {
    const { app, base } = await listeningApp(db);
    try {
      const overview = await get(base, "/ui");
      expect(overview.status).toBe(200);
      expect(overview.text).toContain("open: the API runs without keys (loopback only)");
      expect((await get(base, "/ui/login")).status).toBe(303);
    } finally {
      await app.close();
    }
  });
});

describe("actions", () => {
  test("cancel and retry need this site's form token; another origin or a missing token changes nothing", async ({ database: { db } }) => {
    const pending = await insertJob(db, { request: sampleRequest({ ix_client_id: "client-b" }) });
    const failed = await insertJob(db, { status: "error" });
    const { app, base } = await listeningApp(db, withKeys);
    try {
      const cookie = await signIn(base, ADMIN_KEY);
      const page = await get(base, `/ui/jobs/${pending.job_id}`, cookie);
      expect(page.text).toContain("Cancel job");
      const csrf = csrfOf(page);

      const signedOut = await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf });
      expect([signedOut.status, signedOut.headers.get("location")]).toEqual([303, "/ui/login"]);
      expect((await post(base, `/ui/jobs/${pending.job_id}/cancel`, {}, { cookie })).status).toBe(403);
      expect((await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf: `x${csrf.slice(1)}` }, { cookie })).status).toBe(403);
      const crossSite = await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf }, { cookie, origin: "https://evil.example" });
      expect(crossSite.status).toBe(403);
      expect(crossSite.text).toContain("This form was not sent from a page of this dashboard.");
      expect((await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf }, { cookie, "sec-fetch-site": "cross-site" })).status).toBe(403);
      expect((await jobs.get(db, pending.job_id))!.status).toBe("pending");

      const cancelled = await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf }, { cookie });
      expect(cancelled.status).toBe(303);
      expect(cancelled.headers.get("location")).toBe(`/ui/jobs/${pending.job_id}?notice=cancelled`);
      expect((await jobs.get(db, pending.job_id))!.response!.error).toBe("cancelled by an operator before it ran");
      expect((await get(base, cancelled.headers.get("location")!, cookie)).text).toContain("Cancelled.");
      // Again: it already ended, so the page says why nothing happened.
      const again = await post(base, `/ui/jobs/${pending.job_id}/cancel`, { csrf }, { cookie });
      expect(again.status).toBe(409);
      expect(again.text).toContain("It already ended cancelled");

      const retried = await post(base, `/ui/jobs/${failed.job_id}/retry`, { csrf }, { cookie });
      expect(retried.headers.get("location")).toBe(`/ui/jobs/${failed.job_id}?notice=retried`);
      expect((await jobs.get(db, failed.job_id))!.status).toBe("pending");
    } finally {
      await app.close();
    }
  });

  test("bulk retry confirms the count of the filter's failed jobs, then retries exactly those", async ({ database: { db } }) => {
    const ours = [];
    for (let i = 0; i < 3; i++) ours.push(await insertJob(db, { request: sampleRequest({ ix_client_id: "client-a" }), status: "error" }));
    const theirs = await insertJob(db, { request: sampleRequest({ ix_client_id: "client-b" }), status: "error" });
    const { app, base } = await listeningApp(db, withKeys);
    try {
      const cookie = await signIn(base, ADMIN_KEY);
      const list = await get(base, "/ui/jobs?client=client-a&status=error", cookie);
      expect(list.text).toContain('href="/ui/retry-failed?client=client-a"');
      const confirm = await get(base, "/ui/retry-failed?client=client-a", cookie);
      expect(confirm.text).toContain("<b>3</b> failed jobs match.");
      expect(confirm.text).toContain("Retry 3 jobs");
      expect((await jobs.get(db, ours[0]!.job_id))!.status).toBe("error"); // the confirmation changes nothing

      const posted = await post(base, "/ui/retry-failed", { csrf: csrfOf(confirm), client: "client-a", use_case: "" }, { cookie });
      expect(posted.status).toBe(303); // then a GET: reloading the result does not retry again
      expect(posted.headers.get("location")).toBe("/ui/retry-failed/done?client=client-a&retried=3");
      const done = await get(base, posted.headers.get("location")!, cookie);
      expect(done.text).toContain("Retried 3 jobs");
      for (const job of ours) expect((await jobs.get(db, job.job_id))!.status).toBe("pending");
      expect((await jobs.get(db, theirs.job_id))!.status).toBe("error");

      const bad = await get(base, "/ui/retry-failed?client=not%20a%20client", cookie);
      expect(bad.status).toBe(400);
      expect(bad.text).toContain("client:");
    } finally {
      await app.close();
    }
  });
});

describe("pages", () => {
  test("everything a job holds is escaped: a <script> in a request is text, never markup", async ({ database: { db } }) => {
    const hostile = "<script>alert('x')</script>";
    const job = await insertJob(db, {
      request: sampleRequest({ request_id: `r-<b>"'&`, context: { texts: [hostile] }, options: { fields: { [hostile]: "\\d" } } }),
      status: "error",
      errors: [{ attempt: 1, at: new Date().toISOString(), error: `<img src=x onerror=alert(1)>` }],
      callbackUrl: "https://hooks.example/x?<script>",
      callbackLastError: "<script>alert(2)</script>",
      callbackNextAttemptAt: new Date(),
    });
    const { app, base } = await listeningApp(db);
    try {
      const page = await get(base, `/ui/jobs/${job.job_id}`);
      expect(page.status).toBe(200);
      expect(page.text).not.toContain("<script>");
      expect(page.text).not.toContain("<img");
      expect(page.text).not.toContain("<b>\"");
      expect(page.text).toContain("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
      expect(page.text).toContain("r-&lt;b&gt;&quot;&#39;&amp;");
      expect(page.text).toContain("&lt;img src=x onerror=alert(1)&gt;");
      const list = await get(base, "/ui/jobs");
      expect(list.text).toContain("r-&lt;b&gt;&quot;&#39;&amp;");
      expect(list.text).not.toContain("<b>\"");
    } finally {
      await app.close();
    }
  });

  test("the jobs list filters by client, status, use_case and request_id and pages by keyset", async ({ database: { db } }) => {
    const made = [];
    for (let i = 0; i < 55; i++) {
      made.push(await insertJob(db, { request: sampleRequest({ ix_client_id: i % 2 ? "client-a" : "client-b", request_id: `r-${i}` }), createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) }));
    }
    const { app, base } = await listeningApp(db);
    try {
      const first = await get(base, "/ui/jobs");
      const ids = (text: string) => [...text.matchAll(/href="\/ui\/jobs\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
      expect(ids(first.text)).toEqual(made.slice(5).reverse().map((j) => j.job_id));
      const next = /href="(\/ui\/jobs\?cursor=[^"]+)"/.exec(first.text)![1]!.replaceAll("&amp;", "&");
      expect(ids((await get(base, next)).text)).toEqual(made.slice(0, 5).reverse().map((j) => j.job_id));

      const one = await get(base, "/ui/jobs?client=client-a&request_id=r-3");
      expect(ids(one.text)).toEqual([made[3]!.job_id]);
      const needsClient = await get(base, "/ui/jobs?request_id=r-3");
      expect(needsClient.status).toBe(400);
      expect(needsClient.text).toContain("give the client too");
      expect(ids((await get(base, "/ui/jobs?client=client-b&status=done")).text)).toEqual([]);
      expect((await get(base, "/ui/jobs?status=finished")).status).toBe(400);
      expect((await get(base, "/ui/jobs?cursor=bogus")).text).toContain("That page link is not valid any more");
      expect((await get(base, `/ui/jobs/${crypto.randomUUID()}`)).status).toBe(404);
    } finally {
      await app.close();
    }
  });

  test("the overview counts by use_case and status, charts the hour and lists live workers", async ({ database: { db } }) => {
    await registerTestWorker(db, ["extract_fields", "ocr"]);
    await insertJob(db, { request: sampleRequest({ use_case: "ocr" }) });
    await insertJob(db, { status: "done" });
    await insertJob(db, { status: "error" });
    const { app, base } = await listeningApp(db);
    try {
      const page = await get(base, "/ui");
      expect(page.text).toContain('href="/ui/jobs?use_case=ocr&amp;status=pending">1</a>');
      expect(page.text).toContain('href="/ui/jobs?use_case=extract_fields&amp;status=error">1</a>');
      expect(page.text).toContain("Throughput: jobs finished per minute (2 in the last hour)");
      expect(page.text.match(/<rect class="bar"/g)).toHaveLength(120);
      expect(page.text).toContain('<span class="tag">ocr</span>');
      expect((await get(base, "/ui/ui.css")).headers.get("content-type")).toBe("text/css; charset=utf-8");
    } finally {
      await app.close();
    }
  });
});
