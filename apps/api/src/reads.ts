import { type Database, isTransientDbError } from "@ix/store";

/**
 * Which database each of the API's reads goes to: the one home of that rule
 * (docs/OPERATIONS.md, "Read replicas"). With IX_POSTGRES_READ_URL set, the
 * reads listed here run on that standby. They are lists and aggregates: the
 * heavy reads, and ones where a result a replication lag old is still right.
 *
 * Everything else runs on the primary. That covers every write, and every
 * read inside a write: the resubmission comparison, cancel, retry and the
 * use_case check of a submission. It also covers the lookup of one job by
 * `job_id` or by `(client_id, request_id)`, in the API and on the dashboard.
 * A caller makes that lookup right after its own POST (or an operator's page
 * after an action), and a standby replays the primary's commits only after
 * its lag, so there it would answer 404 for a job just accepted. These
 * lookups are single index probes, so the primary pays little for them.
 */
export const REPLICA_READS = {
  "job-list": "GET /jobs without request_id: a page of jobs",
  metrics: "the database figures of GET /metrics (already cached for seconds)",
  "dashboard-overview": "/ui: jobs by use_case and status, the last hour, live workers",
  "dashboard-job-list": "/ui/jobs without request_id: a page of jobs",
  "dashboard-failed-count": "/ui/retry-failed: how many failed jobs a bulk retry would take (the retry itself runs on the primary)",
} as const;

export type ReplicaRead = keyof typeof REPLICA_READS;

/**
 * A read listed in REPLICA_READS failed because the replica could not answer
 * (down, unreachable, or a statement past its timeout). It is answered 503
 * and not retried on the primary. The replica is there to keep this load off
 * the primary; a fallback would move all of it back at once, and would hide a
 * broken replica behind working pages. Reads that must work keep working:
 * they never touch the replica.
 */
export class ReadReplicaUnavailableError extends Error {
  override readonly name = "ReadReplicaUnavailableError";
  constructor(
    readonly read: ReplicaRead,
    cause: unknown,
  ) {
    super(`the read replica (IX_POSTGRES_READ_URL) could not answer the ${read} read`, { cause });
  }
}

export interface Reads {
  /** Every write, and every read that must see the caller's own writes. */
  readonly primary: Database;
  /** Whether IX_POSTGRES_READ_URL is set; without it every read runs on the primary. */
  readonly replicated: boolean;
  /** Where a read of REPLICA_READS runs: the replica when one is configured, else the primary. */
  database(read: ReplicaRead): Database;
  /** Runs the read there; a replica that cannot answer throws ReadReplicaUnavailableError. */
  run<T>(read: ReplicaRead, query: (db: Database) => Promise<T>): Promise<T>;
}

export function createReads({ primary, replica }: { primary: Database; replica?: Database | undefined }): Reads {
  return {
    primary,
    replicated: replica !== undefined,
    database: () => replica ?? primary,
    async run(read, query) {
      if (replica === undefined) return query(primary);
      try {
        return await query(replica);
      } catch (error) {
        throw isTransientDbError(error) ? new ReadReplicaUnavailableError(read, error) : error;
      }
    },
  };
}
