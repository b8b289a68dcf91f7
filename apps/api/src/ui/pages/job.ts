import type { jobs } from "@ix/store";
import { type Html, between, html, when } from "../html.ts";
import { csrfField, page, statusBadge, type Viewer } from "../layout.ts";

/** What an action just did, named by the redirect after it (never text from the request). */
export const NOTICES = {
  cancelled: "Cancelled.",
  "cancel-requested": "Cancel requested: its worker stops the run and stores it cancelled.",
  retried: "Retried: the job is pending again.",
} as const;
export type Notice = keyof typeof NOTICES;

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** One job: what it is, its timeline, actions, failed runs, callback, request and response. */
export function jobPage({ viewer, inspection, notice, problem }: { viewer: Viewer; inspection: jobs.JobInspection; notice?: Notice; problem?: string }): Html {
  const { job, callback } = inspection;
  const canCancel = job.status === "pending" || job.status === "running";
  const canRetry = job.status === "error" || job.status === "cancelled";
  const action = (verb: "cancel" | "retry", label: string) =>
    html`<form method="post" action="/ui/jobs/${job.job_id}/${verb}" class="inline">${csrfField(viewer)}<button type="submit" class="${verb}">${label}</button></form>`;
  return page({
    title: `Job ${job.job_id}`,
    viewer,
    body: html`<h1>Job <span class="mono">${job.job_id}</span> ${statusBadge(job.status)}</h1>
${notice ? html`<p class="notice" role="status">${NOTICES[notice]}</p>` : ""}
${problem ? html`<p class="error" role="alert">${problem}</p>` : ""}
<p class="actions">${canCancel ? action("cancel", "Cancel job") : ""}${canRetry ? action("retry", "Retry job") : ""}</p>
<div class="columns">
<section>
  <h2>Job</h2>
  <dl>
    <dt>client</dt><dd><a href="/ui/jobs?client=${encodeURIComponent(job.client_id)}">${job.client_id}</a></dd>
    <dt>request_id</dt><dd class="mono">${job.request_id}</dd>
    <dt>use_case</dt><dd>${job.request.use_case}</dd>
    <dt>ix_id</dt><dd class="mono">${job.ix_id}</dd>
    <dt>priority</dt><dd>${job.priority}</dd>
    <dt>run</dt><dd>${job.attempts + 1}${job.attempts > 0 ? ` (${job.attempts} earlier ${job.attempts === 1 ? "run" : "runs"} failed or orphaned)` : ""}</dd>
    <dt>max_attempts</dt><dd>${job.max_attempts ?? "the pipeline's policy"}</dd>
    ${
      job.cancel_requested_at
        ? html`<dt>cancel requested</dt><dd>${when(job.cancel_requested_at)}${inspection.cancelRequestedBy ? ` by ${inspection.cancelRequestedBy === "client" ? "its client" : "an operator"}` : ""}</dd>`
        : ""
    }
    ${inspection.leaseExpiresAt ? html`<dt>lease until</dt><dd>${when(inspection.leaseExpiresAt)}</dd>` : ""}
  </dl>
</section>
<section>
  <h2>Timeline</h2>
  <ol class="timeline">
    <li><b>created</b> ${when(job.created_at)}</li>
    <li><b>due (run_at)</b> ${when(job.run_at)}</li>
    <li><b>started</b> ${when(job.started_at)} <small>waited ${between(job.run_at, job.started_at)}</small></li>
    <li><b>finished</b> ${when(job.finished_at)} <small>ran ${between(job.started_at, job.finished_at)}</small></li>
  </ol>
</section>
<section>
  <h2>Callback</h2>
  ${
    job.callback_url === null
      ? html`<p class="empty">No callback_url.</p>`
      : html`<dl>
    <dt>url</dt><dd class="mono ellipsis">${job.callback_url}</dd>
    <dt>status</dt><dd>${job.callback_status ?? (callback.nextAttemptAt ? (callback.attempts > 0 ? "retrying" : "due") : "waiting for the job to end")}</dd>
    <dt>attempts</dt><dd>${callback.attempts}</dd>
    ${callback.nextAttemptAt ? html`<dt>next attempt</dt><dd>${when(callback.nextAttemptAt)}</dd>` : ""}
    ${callback.lastError ? html`<dt>last error</dt><dd class="error-text">${callback.lastError}</dd>` : ""}
  </dl>`
  }
</section>
</div>
<section>
  <h2>Failed runs <small>(${job.errors.length}, the last 20 kept)</small></h2>
  ${
    job.errors.length === 0
      ? html`<p class="empty">None.</p>`
      : html`<table><thead><tr><th class="num">run</th><th>at</th><th>error</th></tr></thead><tbody>${job.errors.map(
          (e) => html`<tr><td class="num">${e.attempt}</td><td>${when(e.at)}</td><td class="error-text">${e.error}</td></tr>`,
        )}</tbody></table>`
  }
</section>
<section>
  <h2>Response</h2>
  ${job.response === null ? html`<p class="empty">None yet.</p>` : html`<pre>${json(job.response)}</pre>`}
</section>
<section>
  <h2>Request</h2>
  <pre>${json(job.request)}</pre>
</section>`,
  });
}
