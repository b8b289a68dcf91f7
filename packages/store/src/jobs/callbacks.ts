import type { Job, TraceContext } from "@ix/contracts";
import { and, eq, getTableColumns, isNull, lte, sql } from "drizzle-orm";
import type { Executor } from "../db.ts";
import { type BreakerPolicy, type CallbackOutcome, hostPauseSeconds } from "../lifecycle.ts";
import { ixCallbackHosts, ixJobs } from "../schema.ts";
import { clock, type OnUnreadableRow, readJobRow, traceContextOf } from "./row.ts";

export interface CallbackDelivery {
  job: Job;
  /** 1-based number of this delivery attempt; the fence for recording its outcome. */
  attempt: number;
  /** The callback URL's `host[:port]`, lowercased (`callbackHost`): the key of the per-host cap and the circuit breaker. */
  host: string;
  /** The submitter's trace context: the delivery carries a `traceparent` of that trace. Null when none was sent. */
  trace: TraceContext | null;
}

/**
 * What a callback "host" is, written once, in SQL: the callback URL's
 * authority without user info, lowercased (`hooks.example`, `127.0.0.1:8080`).
 * Computed by the database so the claim, the breaker and the worker's
 * per-host cap all use the same key; the worker never parses it itself.
 */
export const callbackHost = sql<string>`lower(substring(${ixJobs.callbackUrl} from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#]*)'))`;

export interface ClaimDueCallbacksParams {
  limit: number;
  leaseSeconds: number;
  /**
   * At most `perHost` deliveries in flight per host for this claimer: `busy`
   * holds how many it has in flight now, so the claim takes only what keeps
   * each host within the cap. Omitted: no cap.
   */
  hostCap?: { perHost: number; busy: ReadonlyMap<string, number> };
  /** Told of each due row that is not a valid Job; its delivery ends `failed` instead of being returned. */
  onUnreadable?: OnUnreadableRow;
  now?: Date;
}

/**
 * Claims due callback deliveries with SKIP LOCKED and leases them: the next
 * attempt time moves `leaseSeconds` ahead (`lifecycle.callbackLeaseSeconds`),
 * so a worker that dies mid-POST leaves the delivery to be retried after the
 * lease instead of lost, and two workers never send the same attempt.
 *
 * Which due deliveries, fairly:
 * - from each client, only its `limit` oldest due deliveries are candidates,
 *   found through `ix_jobs_callback_client_idx` by jumping from client to
 *   client, so the cost grows with the number of clients that have callbacks
 *   scheduled, not with one client's backlog (BENCHMARKS.md, "Fair callback claims");
 * - none to a host the circuit breaker paused (`ix_callback_hosts.paused_until`);
 * - per host, only the oldest few that keep it within `hostCap`, so a receiver
 *   that hangs holds at most that many of the claimer's slots;
 * - then round robin across clients: every client's oldest due delivery comes
 *   before any client's second, so one client's backlog cannot starve another's.
 * A client whose oldest due deliveries all wait for capped hosts gets none
 * this time, even if later ones go elsewhere: only that client waits.
 */
export async function claimDueCallbacks(db: Executor, params: ClaimDueCallbacksParams): Promise<CallbackDelivery[]> {
  const { limit, leaseSeconds, hostCap, onUnreadable, now } = params;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`callback claim limit must be a positive integer, got ${limit}`);
  const at = clock(now);
  const perHost = hostCap ? hostCap.perHost : null;
  const busyHosts = hostCap ? [...hostCap.busy.keys()] : [];
  const busyCounts = hostCap ? [...hostCap.busy.values()] : [];
  const scheduled = sql`${ixJobs.callbackNextAttemptAt} is not null`;
  const fair = sql`
    with recursive clients(client_id) as (
      (select ${ixJobs.clientId} from ${ixJobs} where ${scheduled} order by ${ixJobs.clientId} limit 1)
      union all
      select (
        select ${ixJobs.clientId} from ${ixJobs}
        where ${scheduled} and ${ixJobs.clientId} > clients.client_id
        order by ${ixJobs.clientId} limit 1
      )
      from clients where clients.client_id is not null
    )
    select fair.job_id from (
      select open.job_id, open.due_at,
        row_number() over (partition by open.client_id order by open.due_at, open.job_id) as client_rank
      from (
        select due.*, row_number() over (partition by due.host order by due.due_at, due.job_id) as host_rank
        from clients
        cross join lateral (
          select ${ixJobs.jobId} as job_id, ${ixJobs.clientId} as client_id, ${callbackHost} as host,
            ${ixJobs.callbackNextAttemptAt} as due_at
          from ${ixJobs}
          where ${ixJobs.clientId} = clients.client_id and ${scheduled}
            and ${ixJobs.callbackNextAttemptAt} <= ${at} and ${ixJobs.callbackStatus} is null
          order by ${ixJobs.callbackNextAttemptAt}
          limit ${limit}
        ) as due
        where not exists (
          select 1 from ${ixCallbackHosts}
          where ${ixCallbackHosts.host} = due.host and ${ixCallbackHosts.pausedUntil} > ${at}
        )
      ) as open
      left join unnest(${sql.param(busyHosts)}::text[], ${sql.param(busyCounts)}::int[]) as busy(host, n) on busy.host = open.host
      where ${perHost}::int is null or open.host_rank <= ${perHost}::int - coalesce(busy.n, 0)
    ) as fair
    order by fair.client_rank, fair.due_at, fair.job_id
    limit ${limit}`;
  // Locked in a second step: FOR UPDATE cannot sit on a query with window
  // functions. A row another claimer took meanwhile no longer qualifies
  // (PostgreSQL re-checks the condition on the row it locks) or is skipped.
  const locked = db
    .select({ jobId: ixJobs.jobId })
    .from(ixJobs)
    .where(and(sql`${ixJobs.jobId} = any(array(${fair}))`, isNull(ixJobs.callbackStatus), lte(ixJobs.callbackNextAttemptAt, at)))
    .for("update", { skipLocked: true });
  const rows = await db
    .update(ixJobs)
    .set({
      callbackAttempts: sql`${ixJobs.callbackAttempts} + 1`,
      callbackNextAttemptAt: sql`${at} + make_interval(secs => ${leaseSeconds}::float8)`,
    })
    .where(sql`${ixJobs.jobId} = any(array(${locked}))`)
    .returning({ ...getTableColumns(ixJobs), host: callbackHost });

  const deliveries: CallbackDelivery[] = [];
  for (const { host, ...row } of rows) {
    const read = readJobRow(row);
    if (read.ok) {
      deliveries.push({ job: read.job, attempt: row.callbackAttempts, host, trace: traceContextOf(row) });
      continue;
    }
    // Its Job cannot be built, so it cannot be sent: its delivery ends here, not in every later claim.
    await recordCallbackAttempt(db, {
      jobId: row.jobId,
      attempt: row.callbackAttempts,
      outcome: { kind: "failed", error: `not sent: the job's stored row is not a valid job (${read.unreadable.reason})` },
      ...(now ? { now } : {}),
    });
    onUnreadable?.(read.unreadable, "delivery failed");
  }
  return deliveries;
}

/**
 * Records the outcome of delivery attempt `attempt` (`lifecycle.decideCallbackOutcome`),
 * fenced on it: an attempt whose lease ran out and was re-claimed cannot
 * overwrite its successor. A retry is never due before its host's pause ends.
 */
export async function recordCallbackAttempt(
  db: Executor,
  { jobId, attempt, outcome, now }: { jobId: string; attempt: number; outcome: CallbackOutcome; now?: Date },
): Promise<boolean> {
  const at = clock(now);
  const set =
    outcome.kind === "delivered"
      ? { callbackStatus: "delivered" as const, callbackNextAttemptAt: null, callbackLastError: null }
      : outcome.kind === "failed"
        ? { callbackStatus: "failed" as const, callbackNextAttemptAt: null, callbackLastError: outcome.error }
        : {
            callbackNextAttemptAt: sql`greatest(
              ${at} + make_interval(secs => ${outcome.delaySeconds}::float8),
              (select ${ixCallbackHosts.pausedUntil} from ${ixCallbackHosts} where ${ixCallbackHosts.host} = ${callbackHost})
            )`,
            callbackLastError: outcome.error,
          };
  const rows = await db
    .update(ixJobs)
    .set(set)
    .where(and(eq(ixJobs.jobId, jobId), eq(ixJobs.callbackAttempts, attempt), isNull(ixJobs.callbackStatus)))
    .returning({ jobId: ixJobs.jobId });
  return rows.length === 1;
}

export interface HostHealthResult {
  /** Failing deliveries in a row, after this one (0 after a healthy one). */
  consecutiveFailures: number;
  /** When the host's pause ends, if it is paused. */
  pausedUntil: Date | null;
  /** This report paused the host (it was not paused before). */
  pausedNow: boolean;
}

/**
 * Feeds one delivery's verdict on its host (`lifecycle.hostHealth`) to the
 * circuit breaker, whose state is shared by every worker in `ix_callback_hosts`.
 * Healthy deletes the host's row (the count starts over). Failing counts one
 * more failure in a row; once `lifecycle.hostPauseSeconds` says so, the host
 * is paused and the due deliveries to it move past the pause, so they spend
 * no attempts while it lasts (the claim skips paused hosts in any case).
 */
export async function recordHostHealth(
  db: Executor,
  { host, health, breaker, now }: { host: string; health: "healthy" | "failing"; breaker: BreakerPolicy; now?: Date },
): Promise<HostHealthResult> {
  const at = clock(now);
  if (health === "healthy") {
    await db.delete(ixCallbackHosts).where(eq(ixCallbackHosts.host, host));
    return { consecutiveFailures: 0, pausedUntil: null, pausedNow: false };
  }
  return db.transaction(async (tx) => {
    // The upsert locks the host's row until commit, so concurrent reports from several workers count one by one.
    const [counted] = await tx
      .insert(ixCallbackHosts)
      .values({ host, consecutiveFailures: 1, updatedAt: at })
      .onConflictDoUpdate({
        target: ixCallbackHosts.host,
        set: { consecutiveFailures: sql`${ixCallbackHosts.consecutiveFailures} + 1`, updatedAt: at },
      })
      .returning({
        consecutiveFailures: ixCallbackHosts.consecutiveFailures,
        wasPaused: sql<boolean>`coalesce(${ixCallbackHosts.pausedUntil} > ${at}, false)`,
      });
    if (!counted) throw new Error(`counting a failure of callback host ${host} returned no row`);
    const pause = hostPauseSeconds(counted.consecutiveFailures, breaker);
    if (pause === null) return { consecutiveFailures: counted.consecutiveFailures, pausedUntil: null, pausedNow: false };
    const [paused] = await tx
      .update(ixCallbackHosts)
      .set({ pausedUntil: sql`${at} + make_interval(secs => ${pause}::float8)` })
      .where(eq(ixCallbackHosts.host, host))
      .returning({ pausedUntil: ixCallbackHosts.pausedUntil });
    const pausedUntil = paused?.pausedUntil ?? null;
    // Read in SQL rather than passed back: a JS Date would round the pause's microseconds away.
    const pauseEnd = sql`(select ${ixCallbackHosts.pausedUntil} from ${ixCallbackHosts} where ${ixCallbackHosts.host} = ${host})`;
    // Rows another worker is claiming right now are skipped: their claim leases them anyway.
    const waiting = tx
      .select({ jobId: ixJobs.jobId })
      .from(ixJobs)
      .where(
        and(
          sql`${ixJobs.callbackNextAttemptAt} is not null`,
          sql`${ixJobs.callbackNextAttemptAt} < ${pauseEnd}`,
          isNull(ixJobs.callbackStatus),
          sql`${callbackHost} = ${host}`,
        ),
      )
      .for("update", { skipLocked: true });
    await tx
      .update(ixJobs)
      .set({ callbackNextAttemptAt: pauseEnd })
      .where(sql`${ixJobs.jobId} = any(array(${waiting}))`);
    return { consecutiveFailures: counted.consecutiveFailures, pausedUntil, pausedNow: !counted.wasPaused };
  });
}
