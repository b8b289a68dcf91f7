import { jobs } from "@ix/store";
import { callbackState, describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { type IxProcess, killAll, resetPeakRss, spawnIx } from "../src/processes.ts";
import { hugeBody, type Receiver, startHeaderTrickler, startReceiver, trickleBody } from "../src/receivers.ts";
import { waitFor } from "../src/wait.ts";

const MB = 1_048_576;

const HUGE = 50 * MB;
const WELL_BEHAVED_JOBS = 20;

/**
 * Callback receivers that fail, hang, redirect, send huge
 * bodies or trickle bytes are retried on the schedule and end `failed` (or
 * `delivered` once they answer 2xx), without harming the worker: its memory
 * stays bounded and the well-behaved receivers' callbacks arrive once each.
 */
describe("hostile callback receivers against a worker process", () => {
  test("each ends as the schedule says; other callbacks are unaffected; worker memory stays bounded", { timeout: 90_000 }, async ({
    database: { db, url },
  }) => {
    const elsewhere = await startReceiver((res) => res.writeHead(204).end());
    const receivers = {
      flaky: await startReceiver((res, n) => res.writeHead(n === 1 ? 500 : 204).end()),
      always500: await startReceiver((res) => res.writeHead(500).end("receiver is broken")),
      hang: await startReceiver(() => undefined),
      redirect: await startReceiver((res) => res.writeHead(302, { location: elsewhere.url.replace("127.0.0.1", "localhost") }).end()),
      hugeOk: await startReceiver(hugeBody(200, HUGE)),
      hugeError: await startReceiver(hugeBody(500, HUGE)),
      trickleBody: await startReceiver(trickleBody(500, 50)),
      trickleHeaders: await startHeaderTrickler(100),
    };
    const wellBehaved = await startReceiver((res) => res.writeHead(204).end());
    const all: Receiver[] = [elsewhere, wellBehaved, ...Object.values(receivers)];
    const processes: IxProcess[] = [];
    try {
      const worker = spawnIx("worker", {
        IX_POSTGRES_URL: url,
        IX_WORKER_CONCURRENCY: "4",
        IX_WORKER_POLL_INTERVAL_SECONDS: "0.2",
        IX_CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
        IX_CALLBACK_TIMEOUT_SECONDS: "1",
        IX_CALLBACK_MAX_ATTEMPTS: "3",
        IX_CALLBACK_RETRY_BASE_SECONDS: "0.05",
        IX_CALLBACK_RETRY_MAX_SECONDS: "0.2",
        IX_LOG_LEVEL: "warn",
      });
      processes.push(worker);
      await waitFor("the worker to listen", async () => (await listeningWorkers(db)) === 1);
      let n = 0;
      const submit = async (callbackUrl: string) =>
        (
          await jobs.insertPending(db, {
            request: { use_case: "nap", ix_client_id: "callbacks", request_id: `cb-${++n}`, context: { texts: ["t"] }, options: { ms: 10 } },
            callbackUrl,
          })
        ).job.job_id;
      const allFinal = async (ids: string[]) => {
        for (const id of ids) if ((await jobs.get(db, id))?.callback_status === null) return false;
        return true;
      };

      // Warm-up: the first callbacks load and compile the delivery path, so the baseline is the worker's working size.
      const warmUp: string[] = [];
      for (let i = 0; i < WELL_BEHAVED_JOBS; i++) warmUp.push(await submit(wellBehaved.url));
      await waitFor("the warm-up callbacks", () => allFinal(warmUp));
      // From here on the kernel tracks the peak of this phase alone (Linux; elsewhere the lifetime peak is used).
      const phasePeak = await resetPeakRss(worker.pid);
      const sampledAfter = worker.lines.length;
      const ready = await worker.waitForLine("a memory sample after the warm-up", (line) => line.fault === "memory" && worker.lines.indexOf(line) >= sampledAfter);
      const baselineRss = Number(ready.rssBytes);

      const hostile: Record<keyof typeof receivers, string> = {} as never;
      for (const [name, receiver] of Object.entries(receivers)) hostile[name as keyof typeof receivers] = await submit(receiver.url);
      // Well-behaved callbacks due at the same time as the hostile ones.
      const normal: string[] = [];
      for (let i = 0; i < WELL_BEHAVED_JOBS; i++) normal.push(await submit(wellBehaved.url));
      const ids = [...Object.values(hostile), ...normal];

      await waitFor("every callback to be delivered or failed", () => allFinal(ids), { timeoutMs: 60_000, intervalMs: 100 });
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
      const exit = await worker.waitForLine("its exit report", (line) => line.fault === "exit");
      const lifetimePeakRss = Number(exit.maxRssBytes);
      const peakRss = phasePeak ? Number(exit.hwmBytes) : lifetimePeakRss;

      const outcome = async (id: string) => {
        const job = await jobs.get(db, id);
        const state = await callbackState(db, id);
        return { status: job?.callback_status, attempts: state?.attempts, lastError: state?.lastError ?? null };
      };
      const outcomes = Object.fromEntries(
        await Promise.all(Object.entries(hostile).map(async ([name, id]) => [name, await outcome(id)] as const)),
      ) as Record<keyof typeof receivers, Awaited<ReturnType<typeof outcome>>>;
      printFigures("callbacks", {
        hostile_receivers: Object.keys(receivers).length,
        delivered: Object.values(outcomes).filter((o) => o.status === "delivered").length,
        failed: Object.values(outcomes).filter((o) => o.status === "failed").length,
        hostile_attempts: Object.values(outcomes).reduce((sum, o) => sum + (o.attempts ?? 0), 0),
        well_behaved_callbacks: wellBehaved.received.length,
        well_behaved_retries: wellBehaved.received.length - 2 * WELL_BEHAVED_JOBS,
        trickle_headers_connections: receivers.trickleHeaders.connections(),
        huge_ok_bytes_taken: receivers.hugeOk.bytesWritten(),
        huge_error_bytes_taken: receivers.hugeError.bytesWritten(),
        rss_before_hostile_mb: (baselineRss / MB).toFixed(1),
        peak_rss_during_hostile_mb: (peakRss / MB).toFixed(1),
        peak_over_baseline_mb: ((peakRss - baselineRss) / MB).toFixed(1),
        lifetime_peak_rss_mb: (lifetimePeakRss / MB).toFixed(1),
        peak_measure: phasePeak ? "VmHWM" : "maxRSS",
      });

      expect(outcomes.flaky).toEqual({ status: "delivered", attempts: 2, lastError: null });
      expect(receivers.flaky.received).toHaveLength(2);
      expect(outcomes.always500).toEqual({ status: "failed", attempts: 3, lastError: "HTTP 500: receiver is broken" });
      expect(receivers.always500.received).toHaveLength(3);
      expect(outcomes.hang).toEqual({ status: "failed", attempts: 3, lastError: expect.stringMatching(/no complete response within 1 s/) });
      expect(receivers.hang.received).toHaveLength(3);
      expect(outcomes.redirect).toEqual({
        status: "failed",
        attempts: 3,
        lastError: expect.stringMatching(/^HTTP 302 redirect to http:\/\/localhost:\d+\/hook not followed$/),
      });
      expect(receivers.redirect.received).toHaveLength(3);
      expect(elsewhere.received).toHaveLength(0);
      // A 2xx is decided by its status line; the 50 MB body is never read.
      expect(outcomes.hugeOk).toEqual({ status: "delivered", attempts: 1, lastError: null });
      expect(receivers.hugeOk.received).toHaveLength(1);
      expect(receivers.hugeOk.bytesWritten()).toBeLessThan(HUGE);
      // A failure's body is read only up to the cap, for the error message.
      expect(outcomes.hugeError).toEqual({ status: "failed", attempts: 3, lastError: `HTTP 500: ${"a".repeat(200)}` });
      expect(receivers.hugeError.bytesWritten()).toBeLessThan(HUGE);
      // A body dripping forever is cut off by the attempt's budget, not waited out.
      expect(outcomes.trickleBody).toEqual({ status: "failed", attempts: 3, lastError: expect.stringMatching(/^HTTP 500/) });
      expect(receivers.trickleBody.received).toHaveLength(3);
      expect(outcomes.trickleHeaders).toEqual({ status: "failed", attempts: 3, lastError: expect.stringMatching(/no complete response within 1 s/) });
      expect(receivers.trickleHeaders.received.map((r) => r.body)).toEqual(Array(3).fill("POST /hook HTTP/1.1"));

      // The well-behaved receiver got each of its jobs exactly once, first time, hostile neighbours or not.
      for (const id of [...warmUp, ...normal]) expect(await outcome(id)).toEqual({ status: "delivered", attempts: 1, lastError: null });
      expect(wellBehaved.received.map((r) => r.headers["webhook-id"]).sort()).toEqual([...warmUp, ...normal].sort());

      // Bounded: holding even one 50 MB body would show as growth at least that large. Growth, not
      // absolute RSS: the warmed-up size is the runtime's (165 MB on Node 20, ~290 MB on Node 24).
      expect(peakRss - baselineRss).toBeLessThan(HUGE);
    } finally {
      killAll(processes);
      await Promise.all(all.map((r) => r.close()));
    }
  });
});
