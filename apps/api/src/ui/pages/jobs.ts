import { JOB_STATUSES, type Job } from "@ix/contracts";
import { type Html, href, html, when } from "../html.ts";
import { page, statusBadge, type Viewer } from "../layout.ts";

/** The jobs list's filter, as the query string carries it. */
export interface JobsFilter {
  client?: string;
  status?: Job["status"];
  use_case?: string;
  request_id?: string;
}

/** The filter form, a page of jobs newest first, the next page's link, and the way to retry the failed ones. */
export function jobsPage({
  viewer,
  filter,
  items,
  nextCursor,
  problem,
}: {
  viewer: Viewer;
  filter: JobsFilter;
  items: readonly Job[];
  nextCursor: string | null;
  problem?: string;
}): Html {
  const retryable = filter.request_id === undefined && (filter.status === undefined || filter.status === "error");
  return page({
    title: "Jobs",
    viewer,
    body: html`<h1>Jobs</h1>
<form method="get" action="/ui/jobs" class="filter">
  <label>client <input name="client" value="${filter.client ?? ""}" placeholder="every client"></label>
  <label>status <select name="status"><option value="">any</option>${JOB_STATUSES.map(
    (s) => html`<option value="${s}"${s === filter.status ? html` selected` : ""}>${s}</option>`,
  )}</select></label>
  <label>use_case <input name="use_case" value="${filter.use_case ?? ""}" placeholder="any"></label>
  <label>request_id <input name="request_id" value="${filter.request_id ?? ""}" placeholder="needs a client"></label>
  <button type="submit">Filter</button>
  <a href="/ui/jobs">clear</a>
</form>
${problem ? html`<p class="error" role="alert">${problem}</p>` : ""}
${
  retryable
    ? html`<p class="actions"><a class="button" href="${href("/ui/retry-failed", { client: filter.client, use_case: filter.use_case })}">Retry the failed jobs of this filter…</a></p>`
    : ""
}
${
  items.length === 0
    ? html`<p class="empty">No jobs match.</p>`
    : html`<table class="jobs">
  <thead><tr><th>created</th><th>client</th><th>request_id</th><th>use_case</th><th>status</th><th class="num">attempts</th><th>job</th></tr></thead>
  <tbody>${items.map(
    (j) => html`<tr>
    <td>${when(j.created_at)}</td>
    <td>${j.client_id}</td>
    <td class="ellipsis">${j.request_id}</td>
    <td>${j.request.use_case}</td>
    <td>${statusBadge(j.status)}</td>
    <td class="num">${j.attempts}</td>
    <td><a class="mono" href="/ui/jobs/${j.job_id}">${j.job_id.slice(0, 8)}…</a></td>
  </tr>`,
  )}</tbody>
</table>`
}
${nextCursor ? html`<p><a href="${href("/ui/jobs", { ...filter, cursor: nextCursor })}">Older jobs →</a></p>` : ""}`,
  });
}
