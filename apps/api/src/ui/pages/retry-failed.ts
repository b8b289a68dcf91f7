import { type Html, html } from "../html.ts";
import { csrfField, page, type Viewer } from "../layout.ts";

export interface FailedFilter {
  client?: string;
  use_case?: string;
}

function describe(filter: FailedFilter): Html {
  const parts = [filter.client ? html`client <b>${filter.client}</b>` : html`every client`, filter.use_case ? html`use_case <b>${filter.use_case}</b>` : html`every use_case`];
  return html`${parts[0]}, ${parts[1]}`;
}

/** The confirmation before a bulk retry: how many failed jobs the filter holds, and how many one retry takes. */
export function retryFailedConfirmPage({ viewer, filter, count, limit }: { viewer: Viewer; filter: FailedFilter; count: number; limit: number }): Html {
  const over = count > limit;
  return page({
    title: "Retry failed jobs",
    viewer,
    body: html`<h1>Retry failed jobs</h1>
<p>Filter: ${describe(filter)}, status <b>error</b>.</p>
${
  count === 0
    ? html`<p class="empty">No failed jobs match: nothing to retry.</p>`
    : html`<p class="confirm">${
        over
          ? html`More than <b>${limit.toLocaleString("en")}</b> failed jobs match. This retries the oldest ${limit.toLocaleString("en")}; run it again for the rest.`
          : html`<b>${count.toLocaleString("en")}</b> failed ${count === 1 ? "job matches" : "jobs match"}. Each goes back to pending, as a retry of one job does.`
      }</p>
<form method="post" action="/ui/retry-failed">
  ${csrfField(viewer)}
  <input type="hidden" name="client" value="${filter.client ?? ""}">
  <input type="hidden" name="use_case" value="${filter.use_case ?? ""}">
  <button type="submit" class="retry">Retry ${over ? `${limit.toLocaleString("en")} jobs` : count === 1 ? "1 job" : `${count.toLocaleString("en")} jobs`}</button>
  <a href="/ui/jobs?status=error">Cancel</a>
</form>`
}`,
  });
}

/** What a bulk retry did. */
export function retryFailedDonePage({ viewer, filter, retried }: { viewer: Viewer; filter: FailedFilter; retried: number }): Html {
  return page({
    title: "Retried",
    viewer,
    body: html`<h1>Retried ${retried.toLocaleString("en")} ${retried === 1 ? "job" : "jobs"}</h1>
<p>Filter: ${describe(filter)}, status <b>error</b>. They are pending again.</p>
<p><a href="/ui/jobs?status=pending">Pending jobs</a> · <a href="/ui">Overview</a></p>`,
  });
}
