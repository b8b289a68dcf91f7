import { type CallbackDelivery, type Database, jobs, lifecycle, logText, logUrl } from "@ix/store";
import type { Logger } from "pino";
import type { CallbackSender } from "../callback-sender.ts";
import { createClaimLoop } from "../claim-loop.ts";
import type { CallbackConfig } from "../config.ts";
import { logDbError } from "../db-retry.ts";
import type { WorkerMetrics } from "../metrics.ts";
import { startDeliverySpan } from "../tracing.ts";

export interface CallbackDispatcher {
  /** Begins delivering: from now on the claim loop runs whenever it is woken and there is room. */
  start(): void;
  /** Deliveries may be due (a job with a callback finished, the poll, a retry delay ran out). */
  wake(): void;
  /** Claims due deliveries, sends them, records the outcomes. Returns how many were attempted. */
  deliverDueOnce(options?: { now?: Date }): Promise<number>;
  /** Stops claiming and cancels the retry wake-ups; deliveries in flight carry on. */
  stop(): void;
  /** Resolves when the deliveries in flight now are sent and recorded. */
  settled(): Promise<void>;
  /** Closes the sender; `force` cuts off requests still in flight (their leases run out and they are sent again). */
  close(options: { force: boolean }): Promise<void>;
  /** Deliveries claimed and not yet recorded. */
  readonly inFlight: number;
}

export interface CallbackDispatcherOptions {
  db: Database;
  sender: CallbackSender;
  config: Pick<
    CallbackConfig,
    "timeoutSeconds" | "maxAttempts" | "retryBaseSeconds" | "retryMaxSeconds" | "concurrency" | "hostConcurrency" | "breaker"
  >;
  log: Logger;
  /** Jitter source for the retry backoff; injected by deterministic tests. */
  random: () => number;
  /** Counts deliveries by outcome (ix_callback_deliveries_total). */
  metrics: WorkerMetrics;
}

/**
 * Delivers callbacks from the durable state in the job row: claims due
 * deliveries with a lease, POSTs each, and records the outcome fenced on the
 * attempt number. A worker that dies mid-POST leaves the delivery to be sent
 * again after its lease, so delivery is at-least-once.
 *
 * Fair to every client: the claim takes deliveries round robin across clients,
 * never more than `hostConcurrency` in flight to one host (counted here, per
 * worker), and none to a host the circuit breaker paused. Each outcome is
 * reported to the breaker (`jobs.recordHostHealth`), whose state all workers share.
 */
export function createCallbackDispatcher({ db, sender, config, log, random, metrics }: CallbackDispatcherOptions): CallbackDispatcher {
  const leaseSeconds = lifecycle.callbackLeaseSeconds(config.timeoutSeconds);
  const deliveries = new Set<Promise<void>>();
  /** Room promised to claims in progress, so concurrent claims never exceed the concurrency. */
  let reserved = 0;
  let started = false;
  let stopping = false;
  /** Ends the claim loop's retry waits on stop. */
  const stopClaiming = new AbortController();
  const retryTimers = new Set<NodeJS.Timeout>();
  /** Deliveries in flight per host (`CallbackDelivery.host`), for the per-host cap. */
  const busy = new Map<string, number>();

  function hold(host: string): void {
    busy.set(host, (busy.get(host) ?? 0) + 1);
  }

  function release(host: string): void {
    const left = (busy.get(host) ?? 1) - 1;
    if (left > 0) busy.set(host, left);
    else busy.delete(host);
  }

  async function deliver({ job, attempt, host, trace }: CallbackDelivery): Promise<void> {
    // The target by origin and path only: a query string may hold the receiver's token.
    const deliveryLog = log.child({ job_id: job.job_id, callback_attempt: attempt, callback_target: logUrl(job.callback_url) });
    // Each attempt is a span in the submitter's trace, and the request carries its traceparent (tracing.ts).
    const span = startDeliverySpan(job, attempt, host, trace);
    const began = performance.now();
    const result = await sender.send(job, span.headers);
    const outcome = lifecycle.decideCallbackOutcome(result, {
      attempt,
      maxAttempts: config.maxAttempts,
      backoff: { baseSeconds: config.retryBaseSeconds, maxSeconds: config.retryMaxSeconds },
      random,
    });
    metrics.callbackDelivered(outcome.kind, (performance.now() - began) / 1000);
    span.end(outcome.kind, result.status);
    try {
      const recorded = await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt, outcome });
      if (!recorded) deliveryLog.warn("delivery outcome not recorded: its lease ran out and another attempt owns it");
    } catch (error) {
      // The lease runs out and the attempt is made again: at-least-once, which the stable webhook-id lets receivers absorb.
      logDbError(log, error, "recording a callback attempt");
      return;
    }
    await reportHostHealth(host, result, deliveryLog);
    // The receiver's own words (the start of its answer) are recorded in the row, never logged: they may quote the job.
    const error = result.ok ? undefined : logText(result.summary ?? result.error);
    if (outcome.kind === "delivered") deliveryLog.info({ status: result.ok ? result.status : undefined }, "callback delivered");
    else if (outcome.kind === "failed") deliveryLog.warn({ error }, "callback failed for good");
    else {
      deliveryLog.info({ error, retryInSeconds: outcome.delaySeconds }, "callback attempt failed; will retry");
      if (started && !stopping) {
        // The poll would find it too; this keeps short retry delays short.
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          deliveryLoop.wake();
        }, outcome.delaySeconds * 1000 + 10);
        retryTimers.add(timer);
      }
    }
  }

  /** Tells the circuit breaker what this delivery says about its host; a failure to do so costs only the breaker's accuracy. */
  async function reportHostHealth(host: string, result: lifecycle.CallbackSendResult, deliveryLog: Logger): Promise<void> {
    const health = lifecycle.hostHealth(result);
    if (health === "unknown") return;
    try {
      const state = await jobs.recordHostHealth(db, { host, health, breaker: config.breaker });
      if (state.pausedNow) {
        deliveryLog.warn(
          { callback_host: host, consecutive_failures: state.consecutiveFailures, paused_until: state.pausedUntil?.toISOString() },
          "callback host paused: its deliveries wait out the cool-down without spending attempts",
        );
      }
    } catch (error) {
      logDbError(log, error, "recording a callback host's health");
    }
  }

  function room(): number {
    return config.concurrency - deliveries.size - reserved;
  }

  async function claimDeliveries(now?: Date): Promise<Promise<void>[]> {
    const free = room();
    if (free <= 0) return [];
    reserved += free;
    let due: CallbackDelivery[];
    try {
      due = await jobs.claimDueCallbacks(db, {
        limit: free,
        leaseSeconds,
        hostCap: { perHost: config.hostConcurrency, busy },
        onUnreadable: (row, outcome) =>
          log.warn({ job_id: row.jobId, client_id: row.clientId, reason: row.reason, outcome }, "job row is not a valid job"),
        ...(now ? { now } : {}),
      });
    } finally {
      reserved -= free;
    }
    return due.map((delivery) => {
      hold(delivery.host);
      const sending: Promise<void> = deliver(delivery)
        .catch((error: unknown) => log.error({ err: error, job_id: delivery.job.job_id }, "callback delivery failed unexpectedly"))
        .finally(() => {
          deliveries.delete(sending);
          release(delivery.host);
          // A wake-up, not just a run: the host this frees may have deliveries the last claim had to leave.
          deliveryLoop.wake();
        });
      deliveries.add(sending);
      return sending;
    });
  }

  const deliveryLoop = createClaimLoop({
    room,
    claim: async () => (await claimDeliveries()).length,
    isActive: () => started && !stopping,
    signal: stopClaiming.signal,
    onError: (error, retryInMs) => logDbError(log, error, "claiming callback deliveries", retryInMs),
  });

  return {
    start() {
      started = true;
      deliveryLoop.wake();
    },
    wake: deliveryLoop.wake,
    async deliverDueOnce({ now }: { now?: Date } = {}) {
      const sending = await claimDeliveries(now);
      await Promise.all(sending);
      return sending.length;
    },
    stop() {
      stopping = true;
      stopClaiming.abort();
      for (const timer of retryTimers) clearTimeout(timer);
    },
    async settled() {
      await Promise.all(deliveries);
    },
    async close({ force }) {
      await sender.close({ force }).catch((error: unknown) => log.debug({ err: error }, "closing the callback agent"));
    },
    get inFlight() {
      return deliveries.size;
    },
  };
}
