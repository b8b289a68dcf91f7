import { readFile } from "node:fs/promises";
import { ClientId, JobStatus, RequestId, UseCase } from "@ix/contracts";
import { InvalidCursorError, jobs, workers } from "@ix/store";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { createKeyLookup } from "../auth.ts";
import { type ApiConfig, requiresKeys } from "../config.ts";
import { ReadReplicaUnavailableError, type Reads } from "../reads.ts";
import { type Html, href } from "./html.ts";
import { messagePage, type Viewer } from "./layout.ts";
import { jobPage, NOTICES, type Notice } from "./pages/job.ts";
import { type JobsFilter, jobsPage } from "./pages/jobs.ts";
import { loginPage } from "./pages/login.ts";
import { overviewPage } from "./pages/overview.ts";
import { retryFailedConfirmPage, retryFailedDonePage } from "./pages/retry-failed.ts";
import { readCookie, SESSION_COOKIE, SESSION_SECONDS, SessionKeeper, sessionCookie } from "./session.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the dashboard's auth hook on /ui pages. */
    viewer: Viewer;
  }
}

export interface DashboardOptions {
  /** The primary, and the replica for the overview, the job list and the failed count (reads.ts). */
  reads: Reads;
  config: Pick<ApiConfig, "apiKeys" | "adminKeys" | "uiSessionSecret">;
}

/** A worker counts as live when seen this recently; a running worker refreshes its row every third of its lease. */
const LIVE_WITHIN_SECONDS = 60;
const PAGE_SIZE = 50;
/**
 * The overview is read at most this often per process, however many operators reload it: its cost grows
 * with the jobs finished in the last hour (docs/ARCHITECTURE.md, "Dashboard"). The page shows its "as of".
 */
const OVERVIEW_CACHE_MS = 5_000;
/** The largest form the dashboard accepts: its forms hold a token and a few short fields. */
const FORM_LIMIT_BYTES = 8_192;

/** Pages are never cached, never framed, and run no script: whatever a job holds cannot execute here. */
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy":
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

function send(reply: FastifyReply, status: number, body: Html): FastifyReply {
  return reply.code(status).headers(PAGE_HEADERS).send(body.text);
}

/** Whether the request came over https, directly or through a proxy that says so: then the cookie is Secure. */
function overHttps(request: FastifyRequest): boolean {
  const forwarded = request.headers["x-forwarded-proto"];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim().toLowerCase();
  return request.protocol === "https" || first === "https";
}

/**
 * A form POST must come from a page of this dashboard: the browser's Sec-Fetch-Site and Origin say where
 * it came from (another site's form is refused before anything is read), and the CSRF token proves it.
 */
function fromThisSite(request: FastifyRequest): boolean {
  const site = request.headers["sec-fetch-site"];
  if (typeof site === "string" && site !== "same-origin" && site !== "none") return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  return URL.canParse(origin) && new URL(origin).host === request.headers.host;
}

const Filter = z.object({
  client: ClientId.optional(),
  status: JobStatus.optional(),
  use_case: UseCase.optional(),
  request_id: RequestId.optional(),
  cursor: z.string().max(512).optional(),
});
const FailedFilter = z.object({ client: ClientId.optional(), use_case: UseCase.optional() });
const JobIdParams = z.object({ job_id: z.string() });

/** Empty form fields and query parameters mean "not given". */
function given(input: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries((input ?? {}) as Record<string, unknown>)) {
    if (typeof value === "string" && value.trim() !== "") out[key] = value.trim();
  }
  return out;
}

function problemText(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ");
}

/**
 * The operator's dashboard at /ui: server-rendered pages over the store (docs/ARCHITECTURE.md,
 * "Dashboard"). With keys configured, operators sign in with an IX_ADMIN_KEYS key; without keys it is
 * open, as the API is, on loopback only.
 */
export async function dashboard(app: FastifyInstance, { reads, config }: DashboardOptions): Promise<void> {
  const db = reads.primary;
  const css = await readFile(new URL("./ui.css", import.meta.url), "utf8");
  const open = !requiresKeys(config);
  const sessions = new SessionKeeper(config.uiSessionSecret);
  const lookup = createKeyLookup(config);
  const operators = new Set(config.adminKeys.map((k) => k.clientId));
  const openViewer: Viewer = { operator: null, csrf: sessions.csrfFor("open") };

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.decorateRequest("viewer", null as never);

  app.setErrorHandler((error, request, reply) => {
    request.log.error({ err: error }, "dashboard request failed");
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    const unavailable = status >= 500;
    return send(
      reply,
      unavailable ? 503 : status,
      messagePage({
        title: unavailable ? "Unavailable" : "Bad request",
        viewer: request.viewer ?? null,
        message: !unavailable
          ? "The request could not be read."
          : error instanceof ReadReplicaUnavailableError
            ? "The read replica did not answer, and this page is read from it. Try again in a moment; a job's own page is read from the primary."
            : "The database did not answer in time. Try again in a moment.",
        back: { href: "/ui", label: "Overview" },
      }),
    );
  });

  // Who is looking, before anything else: pages need a session unless the API runs without keys.
  app.addHook("onRequest", async (request, reply) => {
    // The matched route, not the raw URL: no spelling of a path can reach a page past this check.
    const route = request.routeOptions.url;
    if (route === "/ui/ui.css" || route === "/ui/login") return;
    if (open) {
      request.viewer = openViewer;
      return;
    }
    const session = sessions.verify(readCookie(request.headers.cookie, SESSION_COOKIE));
    // An operator removed from IX_ADMIN_KEYS loses a session signed before (with a configured secret).
    if (session === null || !operators.has(session.operator)) return reply.redirect("/ui/login", 303);
    request.viewer = { operator: session.operator, csrf: session.csrf };
  });

  // Every action is a form POST from this site carrying the viewer's token.
  app.addHook("preHandler", async (request, reply) => {
    if (request.method !== "POST") return;
    const refuse = (message: string) =>
      send(reply, 403, messagePage({ title: "Refused", viewer: request.viewer ?? null, message, back: { href: "/ui", label: "Overview" } }));
    if (!fromThisSite(request)) return refuse("This form was not sent from a page of this dashboard.");
    if (request.routeOptions.url === "/ui/login") return;
    const token = (request.body as Record<string, unknown> | undefined)?.csrf;
    if (!sessions.csrfMatches(request.viewer.csrf, token)) return refuse("The form's token is missing or stale: reload the page and try again.");
  });

  app.get("/ui/ui.css", { schema: { hide: true } }, async (_request, reply) =>
    reply.headers({ "content-type": "text/css; charset=utf-8", "cache-control": "max-age=300" }).send(css),
  );

  app.get("/ui/login", { schema: { hide: true } }, async (_request, reply) => {
    if (open) return reply.redirect("/ui", 303);
    return send(reply, 200, loginPage({ noOperators: operators.size === 0 }));
  });

  app.post("/ui/login", { schema: { hide: true } }, async (request, reply) => {
    if (open) return reply.redirect("/ui", 303);
    const key = (request.body as Record<string, unknown> | undefined)?.key;
    const caller = typeof key === "string" && key.length > 0 ? lookup(key) : null;
    if (caller?.kind === "operator") {
      request.log.info({ operator: caller.name }, "operator signed in to the dashboard");
      reply.header("set-cookie", sessionCookie(sessions.issue(caller.name), { secure: overHttps(request), maxAgeSeconds: SESSION_SECONDS }));
      return reply.redirect("/ui", 303);
    }
    const noOperators = operators.size === 0;
    if (caller?.kind === "client") {
      return send(reply, 403, loginPage({ noOperators, problem: "That is a client key (IX_API_KEYS). The dashboard needs an operator key from IX_ADMIN_KEYS." }));
    }
    return send(reply, 401, loginPage({ noOperators, problem: "That key is not configured." }));
  });

  app.post("/ui/logout", { schema: { hide: true } }, async (request, reply) => {
    reply.header("set-cookie", sessionCookie("", { secure: overHttps(request), maxAgeSeconds: 0 }));
    return reply.redirect(open ? "/ui" : "/ui/login", 303);
  });

  let cached: { at: number; read: Promise<[jobs.QueueOverview, workers.LiveWorker[]]> } | null = null;
  const readOverview = () => {
    const now = Date.now();
    if (cached === null || now - cached.at >= OVERVIEW_CACHE_MS) {
      const read = reads.run("dashboard-overview", (replica) =>
        Promise.all([jobs.queueOverview(replica), workers.liveWorkers(replica, { withinSeconds: LIVE_WITHIN_SECONDS })]),
      );
      // A failed read is not kept: the next request asks again.
      read.catch(() => {
        if (cached?.read === read) cached = null;
      });
      cached = { at: now, read };
    }
    return cached.read;
  };
  const overview = async (request: FastifyRequest, reply: FastifyReply) => {
    const [summary, live] = await readOverview();
    return send(reply, 200, overviewPage({ viewer: request.viewer, overview: summary, live, liveWithinSeconds: LIVE_WITHIN_SECONDS }));
  };
  app.get("/ui", { schema: { hide: true } }, overview);
  app.get("/ui/", { schema: { hide: true } }, overview);

  app.get("/ui/jobs", { schema: { hide: true } }, async (request, reply) => {
    const raw = given(request.query);
    const parsed = Filter.safeParse(raw);
    const shown: JobsFilter = { client: raw.client, status: raw.status as JobsFilter["status"], use_case: raw.use_case, request_id: raw.request_id };
    const problem = (status: number, text: string) => send(reply, status, jobsPage({ viewer: request.viewer, filter: shown, items: [], nextCursor: null, problem: text }));
    if (!parsed.success) return problem(400, problemText(parsed.error));
    const filter = parsed.data;
    if (filter.request_id !== undefined) {
      if (filter.client === undefined) return problem(400, "request_id names a job only within its client: give the client too.");
      const job = await jobs.getByCorrelation(db, { clientId: filter.client, requestId: filter.request_id });
      const items = job && (!filter.status || job.status === filter.status) && (!filter.use_case || job.request.use_case === filter.use_case) ? [job] : [];
      return send(reply, 200, jobsPage({ viewer: request.viewer, filter: shown, items, nextCursor: null }));
    }
    try {
      const listed = await reads.run("dashboard-job-list", (replica) =>
        jobs.listJobs(replica, {
          limit: PAGE_SIZE,
          ...(filter.client === undefined ? {} : { clientId: filter.client }),
          ...(filter.status === undefined ? {} : { status: filter.status }),
          ...(filter.use_case === undefined ? {} : { useCase: filter.use_case }),
          ...(filter.cursor === undefined ? {} : { cursor: filter.cursor }),
        }),
      );
      return send(reply, 200, jobsPage({ viewer: request.viewer, filter: shown, items: listed.items, nextCursor: listed.nextCursor }));
    } catch (error) {
      if (error instanceof InvalidCursorError) return problem(400, "That page link is not valid any more: start from the first page.");
      throw error;
    }
  });

  const notFound = (request: FastifyRequest, reply: FastifyReply, jobId: string) =>
    send(reply, 404, messagePage({ title: "No such job", viewer: request.viewer, message: `No job ${jobId}.`, back: { href: "/ui/jobs", label: "Jobs" } }));

  app.get("/ui/jobs/:job_id", { schema: { hide: true } }, async (request, reply) => {
    const { job_id: jobId } = JobIdParams.parse(request.params);
    const inspection = await jobs.inspect(db, jobId);
    if (inspection === null) return notFound(request, reply, jobId);
    const notice = (request.query as Record<string, unknown>).notice;
    const known = typeof notice === "string" && Object.hasOwn(NOTICES, notice) ? (notice as Notice) : undefined;
    return send(reply, 200, jobPage({ viewer: request.viewer, inspection, ...(known ? { notice: known } : {}) }));
  });

  /** After an action the job page is loaded afresh (POST, redirect, GET), so a reload does not act twice. */
  const conflict = async (request: FastifyRequest, reply: FastifyReply, jobId: string, problem: string) => {
    const inspection = await jobs.inspect(db, jobId);
    if (inspection === null) return notFound(request, reply, jobId);
    return send(reply, 409, jobPage({ viewer: request.viewer, inspection, problem }));
  };

  app.post("/ui/jobs/:job_id/cancel", { schema: { hide: true } }, async (request, reply) => {
    const { job_id: jobId } = JobIdParams.parse(request.params);
    const result = await jobs.cancel(db, { jobId, by: "operator" });
    request.log.info({ operator: request.viewer.operator, job_id: jobId, outcome: result.outcome }, "dashboard cancel");
    switch (result.outcome) {
      case "cancelled":
        return reply.redirect(`/ui/jobs/${jobId}?notice=cancelled`, 303);
      case "requested":
        return reply.redirect(`/ui/jobs/${jobId}?notice=cancel-requested`, 303);
      case "terminal":
        return conflict(request, reply, jobId, `It already ended ${result.job.status}: only a pending or running job can be cancelled.`);
      case "not_found":
        return notFound(request, reply, jobId);
    }
  });

  app.post("/ui/jobs/:job_id/retry", { schema: { hide: true } }, async (request, reply) => {
    const { job_id: jobId } = JobIdParams.parse(request.params);
    const result = await jobs.retry(db, { jobId });
    request.log.info({ operator: request.viewer.operator, job_id: jobId, outcome: result.outcome }, "dashboard retry");
    switch (result.outcome) {
      case "retried":
        return reply.redirect(`/ui/jobs/${jobId}?notice=retried`, 303);
      case "not_retryable":
        return conflict(request, reply, jobId, `It is ${result.job.status}: only a job that ended error or cancelled can be retried.`);
      case "not_found":
        return notFound(request, reply, jobId);
    }
  });

  const failedFilter = (input: unknown) => {
    const parsed = FailedFilter.safeParse(given(input));
    return parsed.success ? { ok: true as const, filter: parsed.data } : { ok: false as const, problem: problemText(parsed.error) };
  };
  const badFilter = (request: FastifyRequest, reply: FastifyReply, problem: string) =>
    send(reply, 400, messagePage({ title: "Bad filter", viewer: request.viewer, message: problem, back: { href: "/ui/jobs", label: "Jobs" } }));

  app.get("/ui/retry-failed", { schema: { hide: true } }, async (request, reply) => {
    const read = failedFilter(request.query);
    if (!read.ok) return badFilter(request, reply, read.problem);
    const { client, use_case } = read.filter;
    const count = await reads.run("dashboard-failed-count", (replica) =>
      jobs.countFailed(replica, {
        cap: jobs.RETRY_FAILED_LIMIT,
        ...(client === undefined ? {} : { clientId: client }),
        ...(use_case === undefined ? {} : { useCase: use_case }),
      }),
    );
    return send(reply, 200, retryFailedConfirmPage({ viewer: request.viewer, filter: read.filter, count, limit: jobs.RETRY_FAILED_LIMIT }));
  });

  app.post("/ui/retry-failed", { schema: { hide: true } }, async (request, reply) => {
    const read = failedFilter({ ...(request.body as object), csrf: undefined });
    if (!read.ok) return badFilter(request, reply, read.problem);
    const { client, use_case } = read.filter;
    const { retried } = await jobs.retryFailed(db, {
      limit: jobs.RETRY_FAILED_LIMIT,
      ...(client === undefined ? {} : { clientId: client }),
      ...(use_case === undefined ? {} : { useCase: use_case }),
    });
    request.log.info({ operator: request.viewer.operator, client, use_case, retried: retried.length }, "dashboard bulk retry");
    return reply.redirect(href("/ui/retry-failed/done", { client, use_case, retried: String(retried.length) }), 303);
  });

  app.get("/ui/retry-failed/done", { schema: { hide: true } }, async (request, reply) => {
    const read = failedFilter(request.query);
    const retried = Number((request.query as Record<string, unknown>).retried);
    if (!read.ok || !Number.isSafeInteger(retried) || retried < 0) return badFilter(request, reply, read.ok ? "retried: not a count" : read.problem);
    return send(reply, 200, retryFailedDonePage({ viewer: request.viewer, filter: read.filter, retried }));
  });
}
