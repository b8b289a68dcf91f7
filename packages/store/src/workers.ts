import { type SQL, sql } from "drizzle-orm";
import type { Executor } from "./db.ts";
import { clock } from "./jobs/row.ts";
import { ixWorkers } from "./schema.ts";

// The worker registry (docs/ARCHITECTURE.md, "Scheduling"): which worker
// processes exist, what they run, when they were last seen.

export interface WorkerRegistration {
  /** A fresh id per worker process (a random uuid). */
  id: string;
  host: string;
  pid: number;
  /** The use_cases it claims, as it claims them. */
  useCases: readonly string[];
  concurrency: number;
}

/**
 * Records a worker, or refreshes its row: last_seen_at becomes now and what it
 * serves is rewritten. A worker calls this when it starts and again with every
 * lease renewal, so a row pruned or lost meanwhile comes back by itself.
 */
export async function registerWorker(db: Executor, worker: WorkerRegistration): Promise<void> {
  const values = { ...worker, useCases: [...new Set(worker.useCases)].sort() };
  await db
    .insert(ixWorkers)
    .values(values)
    .onConflictDoUpdate({
      target: ixWorkers.id,
      set: { useCases: values.useCases, concurrency: values.concurrency, lastSeenAt: sql`now()` },
    });
}

export interface RegistryWindow {
  /** Only workers seen within this many days count (IX_WORKER_REGISTRY_DAYS). */
  withinDays: number;
  now?: Date;
}

/**
 * The one home of "seen recently": a registration counts while its worker was
 * seen within `withinDays`. knownUseCases reads the rows it holds for, and
 * pruneStale deletes exactly the others, so a prune never changes what the
 * API accepts.
 */
function seenWithin({ withinDays, now }: RegistryWindow): SQL {
  if (!(withinDays > 0)) throw new RangeError(`withinDays must be positive, got ${withinDays}`);
  return sql`${ixWorkers.lastSeenAt} > ${clock(now)} - make_interval(days => ${withinDays}::int)`;
}

/** Every use_case some worker seen within `withinDays` serves, sorted: what the API accepts. */
export async function knownUseCases(db: Executor, window: RegistryWindow): Promise<string[]> {
  const { rows } = await db.execute<{ use_case: string }>(sql`
    select distinct u as use_case from ${ixWorkers}, unnest(${ixWorkers.useCases}) as u
    where ${seenWithin(window)}
    order by u`);
  return rows.map((row) => row.use_case);
}

/**
 * Deletes the registrations of workers not seen within `withinDays` (`ix
 * prune`); returns how many. A live worker refreshes its row with every lease
 * renewal, and one that was only unreachable for longer registers again when
 * it comes back.
 */
export async function pruneStale(db: Executor, window: RegistryWindow): Promise<number> {
  const rows = await db
    .delete(ixWorkers)
    .where(sql`not (${seenWithin(window)})`)
    .returning({ id: ixWorkers.id });
  return rows.length;
}

/** A worker process as the registry last saw it. */
export interface LiveWorker {
  id: string;
  host: string;
  pid: number;
  useCases: string[];
  concurrency: number;
  startedAt: Date;
  lastSeenAt: Date;
}

/**
 * Workers seen within `withinSeconds` (a live worker refreshes its row every third of its lease), newest
 * first; at most 500, since the registry keeps rows of stopped workers for IX_WORKER_REGISTRY_DAYS.
 */
export async function liveWorkers(db: Executor, { withinSeconds, now }: { withinSeconds: number; now?: Date }): Promise<LiveWorker[]> {
  if (!(withinSeconds > 0)) throw new RangeError(`withinSeconds must be positive, got ${withinSeconds}`);
  const at = clock(now);
  return db
    .select()
    .from(ixWorkers)
    .where(sql`${ixWorkers.lastSeenAt} > ${at} - make_interval(secs => ${withinSeconds}::float8)`)
    .orderBy(sql`${ixWorkers.startedAt} desc`)
    .limit(500);
}
