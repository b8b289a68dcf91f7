import { JOB_STATUSES } from "@ix/contracts";
import type { jobs, workers } from "@ix/store";
import { barChart } from "../charts.ts";
import { type Html, duration, href, html, when } from "../html.ts";
import { page, type Viewer } from "../layout.ts";

const hhmm = (d: Date) => d.toISOString().slice(11, 16);

/** The queue at a glance: counts by use_case × status, the last hour's throughput and wait, live workers. */
export function overviewPage({
  viewer,
  overview,
  live,
  liveWithinSeconds,
}: {
  viewer: Viewer;
  overview: jobs.QueueOverview;
  live: workers.LiveWorker[];
  liveWithinSeconds: number;
}): Html {
  const useCases = [...new Set(overview.counts.map((c) => c.useCase))].sort();
  const count = (useCase: string, status: string) => overview.counts.find((c) => c.useCase === useCase && c.status === status)?.count ?? 0;
  const total = (status: string) => overview.counts.filter((c) => c.status === status).reduce((n, c) => n + c.count, 0);
  const cell = (useCase: string | undefined, status: string, n: number) =>
    n === 0 ? html`<td class="num zero">0</td>` : html`<td class="num"><a href="${href("/ui/jobs", { use_case: useCase, status })}">${n.toLocaleString("en")}</a></td>`;
  const finished = overview.minutes.reduce((n, m) => n + m.finished, 0);
  return page({
    title: "Overview",
    viewer,
    body: html`<h1>Overview <small>as of ${when(overview.at)}</small></h1>
<section>
  <h2>Jobs by use_case and status</h2>
  <p class="hint">pending and running: now; done, error and cancelled: finished in the last ${overview.minutes.length} minutes.</p>
  ${
    useCases.length === 0
      ? html`<p class="empty">No jobs pending, running or finished in the last hour.</p>`
      : html`<table class="counts">
    <thead><tr><th>use_case</th>${JOB_STATUSES.map((s) => html`<th class="num">${s}</th>`)}</tr></thead>
    <tbody>${useCases.map((u) => html`<tr><th scope="row">${u}</th>${JOB_STATUSES.map((s) => cell(u, s, count(u, s)))}</tr>`)}</tbody>
    <tfoot><tr><th scope="row">all</th>${JOB_STATUSES.map((s) => cell(undefined, s, total(s)))}</tr></tfoot>
  </table>`
  }
</section>
<section class="charts">
  ${barChart({
    title: `Throughput: jobs finished per minute (${finished.toLocaleString("en")} in the last hour)`,
    unit: "jobs",
    format: (n) => `${n} jobs`,
    bars: overview.minutes.map((m) => ({ label: hhmm(m.minute), value: m.finished })),
  })}
  ${barChart({
    title: "Wait time (run_at → started) of the runs that finished each minute: 95th percentile, median darker",
    unit: "ms",
    format: duration,
    bars: overview.minutes.map((m) => ({ label: hhmm(m.minute), value: m.waitP95Ms, inner: m.waitP50Ms })),
  })}
</section>
<section>
  <h2>Live workers <small>(seen in the last ${liveWithinSeconds} s)</small></h2>
  ${
    live.length === 0
      ? html`<p class="empty">No worker has been seen lately: pending jobs will wait.</p>`
      : html`<table>
    <thead><tr><th>host</th><th class="num">pid</th><th>use_cases</th><th class="num">concurrency</th><th>started</th><th>last seen</th></tr></thead>
    <tbody>${live.map(
      (w) => html`<tr><td>${w.host}</td><td class="num">${w.pid}</td><td>${w.useCases.map((u) => html`<span class="tag">${u}</span> `)}</td><td class="num">${w.concurrency}</td><td>${when(w.startedAt)}</td><td>${when(w.lastSeenAt)}</td></tr>`,
    )}</tbody>
  </table>`
  }
</section>`,
  });
}
