import { type Database, metrics } from "@ix/store";
import { collectDefaultMetrics, Counter, Gauge, Histogram, type LabelValues, Registry } from "prom-client";

/**
 * The API's Prometheus metrics (docs/OPERATIONS.md, "Metrics"): what the
 * database says about the queue, read when scraped and cached, and the API's
 * own HTTP traffic. What only a worker sees (run outcomes, wait and run times,
 * deliveries) is on each worker's IX_WORKER_METRICS_PORT. No label ever
 * carries a job id, a request_id or a client id: series stay few whatever the traffic.
 */
export interface ApiMetrics {
  readonly registry: Registry;
  /** Records one answered request by route pattern (never the raw URL), method and status. */
  observeRequest(request: { method: string; route: string; status: number; seconds: number }): void;
  /** The exposition text; database figures at most `cacheSeconds` old. */
  scrape(): Promise<string>;
}

export interface ApiMetricsOptions {
  db: Database;
  /** Pending, running, callbacks and workers are read at most this often; scrapes in between get the cached figures. */
  cacheSeconds?: number;
  /** Finished jobs (done, error, cancelled) are counted at most this often, in the background: that count reads the whole table. */
  finishedCacheSeconds?: number;
  /** Workers seen within this many seconds count as live. */
  liveWorkerSeconds?: number;
  /** The registry's window (IX_WORKER_REGISTRY_DAYS): use_cases of workers older than this are not reported. */
  workerRegistryDays: number;
}

/** Figures that count as live: a worker refreshes its row every third of IX_LEASE_SECONDS (30 s by default). */
export const LIVE_WORKER_SECONDS = 60;

/** Seconds to answer a request: a read takes milliseconds, a submission waits for its batch's commit. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A value refreshed by `load` at most every `ttlMs`; concurrent readers share
 * one load. With `serveStale`, a reader past the ttl gets the last value at
 * once while the refresh runs behind it (only the first read ever waits).
 */
function cached<T>(ttlMs: number, load: () => Promise<T>, { serveStale = false } = {}): () => Promise<T> {
  let value: { at: number; data: T } | null = null;
  let loading: Promise<T> | null = null;
  const refresh = () =>
    (loading ??= load()
      .then((data) => {
        value = { at: performance.now(), data };
        return data;
      })
      .finally(() => {
        loading = null;
      }));
  return async () => {
    if (value !== null && performance.now() - value.at < ttlMs) return value.data;
    if (value !== null && serveStale) {
      // A failed refresh is retried by the next scrape; meanwhile the last counts stand.
      refresh().catch(() => {});
      return value.data;
    }
    return refresh();
  };
}

export function createApiMetrics({
  db,
  cacheSeconds = 5,
  finishedCacheSeconds = 60,
  liveWorkerSeconds = LIVE_WORKER_SECONDS,
  workerRegistryDays,
}: ApiMetricsOptions): ApiMetrics {
  const registry = new Registry();
  // Node's process figures (CPU, memory, event-loop delay, GC) under their usual names, as every Node dashboard expects them.
  collectDefaultMetrics({ register: registry });

  const live = cached(cacheSeconds * 1000, async () => {
    const [counts, backlog, workers] = await Promise.all([
      metrics.liveJobCounts(db),
      metrics.callbackBacklog(db),
      metrics.workersByUseCase(db, { liveSeconds: liveWorkerSeconds, withinDays: workerRegistryDays }),
    ]);
    return { counts: counts.counts, scheduled: counts.scheduled, backlog, workers };
  });
  // Counting the finished rows reads the whole table (~1 s at 1M rows, BENCHMARKS.md "Metrics at 1M rows"):
  // refreshed at most once a minute, behind the scrape that finds it stale, so no scrape but the first waits for it.
  const finished = cached(finishedCacheSeconds * 1000, () => metrics.finishedJobCounts(db), { serveStale: true });

  /**
   * The database figures for a scrape (every gauge below reads them; the caches make that one read at most),
   * or null when the database cannot answer: the scrape still serves the process and HTTP figures.
   */
  async function read() {
    try {
      const [liveFigures, finishedCounts] = await Promise.all([live(), finished()]);
      return { ...liveFigures, finished: finishedCounts };
    } catch {
      return null;
    }
  }

  new Gauge({
    name: "ix_metrics_database_up",
    help: "1 if the database figures of this scrape could be read, else 0 (and the ix_jobs*, ix_callbacks_* and ix_workers_* series are absent)",
    registers: [registry],
    async collect() {
      this.set((await read()) === null ? 0 : 1);
    },
  });
  /**
   * A gauge whose series `pick` takes from the scrape's database figures, as `[labels, value]` pairs (`{}`
   * for a gauge without labels). It is reset first, so a series no longer in the figures is dropped, and
   * sets nothing when the database cannot answer.
   */
  function gaugeFrom<L extends string>(
    config: { name: string; help: string; labelNames?: readonly L[] },
    pick: (figures: NonNullable<Awaited<ReturnType<typeof read>>>) => Array<[LabelValues<L>, number]>,
  ): void {
    new Gauge({
      ...config,
      registers: [registry],
      async collect() {
        this.reset();
        // reset() puts a gauge without labels back at 0; a figure the database did not give must be absent instead.
        if (!config.labelNames?.length) this.remove({});
        const figures = await read();
        if (figures) for (const [labels, value] of pick(figures)) this.set(labels, value);
      },
    });
  }

  gaugeFrom(
    {
      name: "ix_jobs",
      help: "Jobs stored, by status and use_case; pending and running are at most a few seconds old, done, error and cancelled up to a minute",
      labelNames: ["status", "use_case"],
    },
    (figures) => [...figures.counts, ...figures.finished].map(({ status, useCase, count }) => [{ status, use_case: useCase }, count]),
  );
  gaugeFrom(
    {
      name: "ix_jobs_scheduled",
      help: "Pending jobs whose run_at is still ahead (counted in ix_jobs pending too): not claimable yet",
      labelNames: ["use_case"],
    },
    (figures) => figures.scheduled.map(({ useCase, count }) => [{ use_case: useCase }, count]),
  );
  gaugeFrom({ name: "ix_callbacks_due", help: "Callback deliveries due now (waiting for a worker, or being sent)" }, (figures) => [[{}, figures.backlog.due]]);
  gaugeFrom(
    { name: "ix_callbacks_oldest_due_seconds", help: "How long the oldest due callback delivery has been due; 0 when none is" },
    (figures) => [[{}, figures.backlog.oldestDueSeconds]],
  );
  gaugeFrom(
    { name: "ix_workers_live", help: `Workers serving the use_case seen within the last ${liveWorkerSeconds} s`, labelNames: ["use_case"] },
    (figures) => figures.workers.map(({ useCase, live: count }) => [{ use_case: useCase }, count]),
  );
  gaugeFrom(
    { name: "ix_workers_last_seen_seconds", help: "Seconds since any worker serving the use_case was last seen", labelNames: ["use_case"] },
    (figures) => figures.workers.map(({ useCase, lastSeenSeconds }) => [{ use_case: useCase }, lastSeenSeconds]),
  );

  const requests = new Counter({
    name: "ix_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "ix_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });

  return {
    registry,
    observeRequest({ method, route, status, seconds }) {
      requests.inc({ method, route, status: String(status) });
      durations.observe({ method, route }, seconds);
    },
    scrape: () => registry.metrics(),
  };
}
