// How fair share was chosen (BENCHMARKS.md, "Fair share"): the shipped claim
// against the mechanisms it was measured against, on the same data.
//   pnpm bench:fair-share [--database-url URL] [--terminal-rows 1000000] …   (--help lists the flags)
// Creates a scratch database (dropped at the end). For each client count, the
// pending jobs are submitted through `jobs.insertPendingMany` (so the shipped
// turns are real), and each mechanism's claim of 1 and of 16 is timed, each
// sample in a transaction that is rolled back so every sample sees the same
// pending set; a second claimer then claims while the first holds its rows,
// which shows whether the mechanism skips locked rows and takes the next ones.
// Each mechanism gets only its own index, created before and dropped after its
// runs. Then the fairness run (tools/bench/src/fair-share.ts) on each: client
// A's backlog, then client B's 20 jobs, claimed by concurrent claim+complete loops.
import { randomBytes } from "node:crypto";
import { envVar, optionalEnv, parseEnv } from "@ix/contracts";
import { connect, type Database, type Executor, jobs, migrateUp, sql } from "@ix/store";
import { Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { type Claim, FAIR_USE_CASE, interleavedRequests, LATE_JOBS, runFairness, SUBMIT_BATCH, submit } from "./fair-share.ts";
import { percentile, round } from "./stats.ts";

type SQL = ReturnType<typeof sql>;

interface Mechanism {
  name: string;
  /** The index it needs beyond the schema's, created for its runs only. */
  index: string | null;
  claim: Claim;
}

interface RawRun {
  job_id: string;
  client_id: string;
  request_id: string;
  ix_id: string;
  use_case: string;
  attempts: number;
}

/** Sets the chosen rows running, as the shipped claim does, and returns them. */
function claimOf(chosen: (limit: number) => SQL): Claim {
  return async (db, limit) => {
    const result = await db.execute<RawRun & Record<string, unknown>>(sql`
      update ix_jobs set status = 'running', started_at = now(), lease_expires_at = now() + interval '30 seconds'
      where job_id = any(array(${chosen(limit)}))
      returning *`);
    return result.rows.map((r) => ({ jobId: r.job_id, clientId: r.client_id, requestId: r.request_id, ixId: r.ix_id, useCase: r.use_case, attempts: r.attempts }));
  };
}

/** Candidates chosen without locks (FOR UPDATE cannot sit on a query with window functions), then locked, skipping rows another claimer holds. */
function lockedCandidates(candidates: SQL): SQL {
  return sql`select j.job_id from ix_jobs as j
    where j.job_id = any(array(${candidates})) and j.status = 'pending' and j.run_at <= now()
    for update skip locked`;
}

const shipped: Claim = async (db, limit) =>
  (await jobs.claimPendingStatement(db, { limit, useCases: [FAIR_USE_CASE] }).execute()).filter((row) => row.status === "running").map((row) => ({
    jobId: row.jobId,
    clientId: row.clientId,
    requestId: row.requestId,
    ixId: row.ixId,
    useCase: row.useCase,
    attempts: row.attempts,
  }));

const MECHANISMS: Mechanism[] = [
  { name: "turns (shipped)", index: null, claim: shipped },
  {
    name: "round robin (recursive CTE)",
    index: "create index bench_rr_idx on ix_jobs (client_id, run_at) where status = 'pending'",
    claim: claimOf((limit) =>
      lockedCandidates(sql`
        with recursive clients(client_id) as (
          (select client_id from ix_jobs where status = 'pending' order by client_id limit 1)
          union all
          select (select n.client_id from ix_jobs as n where n.status = 'pending' and n.client_id > clients.client_id order by n.client_id limit 1)
          from clients where clients.client_id is not null
        )
        select fair.job_id from (
          select due.job_id, due.run_at, row_number() over (partition by due.client_id order by due.run_at, due.job_id) as client_rank
          from clients cross join lateral (
            select j.job_id, j.client_id, j.run_at from ix_jobs as j
            where j.client_id = clients.client_id and j.status = 'pending' and j.run_at <= now()
            order by j.run_at limit ${limit}
          ) as due
        ) as fair
        order by fair.client_rank, fair.run_at, fair.job_id
        limit ${limit}`),
    ),
  },
  {
    // The same, locking in the lateral instead: a claimer skips another's rows and takes each client's next
    // ones, but every claim locks up to `limit` rows of every client, and holds them until it commits.
    name: "round robin, locked per client",
    index: "create index bench_rr_idx on ix_jobs (client_id, run_at) where status = 'pending'",
    claim: claimOf(
      (limit) => sql`
        with recursive clients(client_id) as (
          (select client_id from ix_jobs where status = 'pending' order by client_id limit 1)
          union all
          select (select n.client_id from ix_jobs as n where n.status = 'pending' and n.client_id > clients.client_id order by n.client_id limit 1)
          from clients where clients.client_id is not null
        )
        select fair.job_id from (
          select due.job_id, due.run_at, row_number() over (partition by due.client_id order by due.run_at, due.job_id) as client_rank
          from clients cross join lateral (
            select j.job_id, j.client_id, j.run_at from ix_jobs as j
            where j.client_id = clients.client_id and j.status = 'pending' and j.run_at <= now()
            order by j.run_at limit ${limit}
            for update skip locked
          ) as due
        ) as fair
        order by fair.client_rank, fair.run_at, fair.job_id
        limit ${limit}`,
    ),
  },
  {
    name: "rank by window function",
    index: "create index bench_rank_idx on ix_jobs (client_id, created_at, job_id) where status = 'pending'",
    claim: claimOf((limit) =>
      lockedCandidates(sql`
        select r.job_id from (
          select job_id, created_at, row_number() over (partition by client_id order by created_at, job_id) as rank
          from ix_jobs where status = 'pending' and run_at <= now()
        ) as r
        order by r.rank, r.created_at, r.job_id
        limit ${limit}`),
    ),
  },
  {
    name: "FIFO (v1 claim)",
    index: "create index bench_fifo_idx on ix_jobs (run_at, job_id) where status = 'pending'",
    claim: claimOf(
      (limit) => sql`select job_id from ix_jobs where status = 'pending' and run_at <= now() order by run_at, job_id limit ${limit} for update skip locked`,
    ),
  },
];

const LIMITS = [1, 16];

class Rollback extends Error {}

/** Runs `body` in a transaction that is always rolled back. */
async function rolledBack<T>(db: Database, body: (tx: Executor) => Promise<T>): Promise<T> {
  let value: T | undefined;
  await db
    .transaction(async (tx) => {
      value = await body(tx);
      throw new Rollback();
    })
    .catch((error: unknown) => {
      if (!(error instanceof Rollback)) throw error;
    });
  return value as T;
}

function positiveInt(value: string): number {
  const n = Number(value.replace(/_/g, ""));
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function wholeNumber(value: string): number {
  const n = Number(value.replace(/_/g, ""));
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a whole number ≥ 0");
  return n;
}

function counts(value: string): number[] {
  const list = value.split(",").map((part) => positiveInt(part.trim()));
  if (list.length === 0) throw new InvalidArgumentError("must list at least one count");
  return list;
}

const Env = z.object({ IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()) });

interface Flags {
  databaseUrl?: string;
  pending: number;
  clients: number[];
  terminalRows: number;
  samples: number;
  fairnessJobs: number;
  loops: number;
  mechanisms?: string;
}

const program = new Command("bench:fair-share")
  .description("time the shipped fair-share claim against the alternatives, and the fairness each gives (BENCHMARKS.md, \"Fair share\")")
  .option("--database-url <url>", "server where a scratch database may be created (default IX_POSTGRES_URL)")
  .option("--pending <jobs>", "pending jobs in each latency run", positiveInt, 20_000)
  .option("--clients <list>", "client counts the pending jobs are spread over", counts, [1, 100, 1_000])
  .option("--terminal-rows <rows>", "finished rows in the table beside the pending ones (e.g. 1000000)", wholeNumber, 0)
  .option("--samples <n>", "timed claims per mechanism, limit and client count", positiveInt, 200)
  .option("--fairness-jobs <jobs>", "client A's backlog in the fairness run (0 skips it)", wholeNumber, 10_000)
  .option("--loops <n>", "concurrent claim+complete loops in the fairness run", positiveInt, 8)
  .option("--mechanisms <list>", "only the mechanisms whose names contain one of these comma-separated words")
  .showHelpAfterError();

const flags = program.parse(process.argv).opts<Flags>();
const serverUrl = flags.databaseUrl ?? parseEnv(Env, process.env).IX_POSTGRES_URL;
if (!serverUrl) {
  console.error("bench:fair-share: give --database-url or set IX_POSTGRES_URL (a server where a scratch database may be created)");
  process.exit(2);
}
const picked = flags.mechanisms
  ? MECHANISMS.filter((m) => flags.mechanisms?.split(",").some((word) => m.name.includes(word.trim())))
  : MECHANISMS;
const log = (message: string) => console.error(`bench:fair-share: ${message}`);
const out = (line: object) => console.log(JSON.stringify(line));

const name = `ix_bench_fair_share_${randomBytes(4).toString("hex")}`;
const admin = connect(serverUrl, { max: 1 });
await admin.execute(sql.raw(`create database ${name}`));
const url = new URL(serverUrl);
url.pathname = `/${name}`;
const db = connect(url.href, { max: flags.loops + 3, applicationName: "ix-bench-fair-share" });

async function withIndex<T>(mechanism: Mechanism, body: () => Promise<T>): Promise<T> {
  if (mechanism.index) {
    await db.execute(sql.raw(mechanism.index));
    await db.execute(sql`analyze ix_jobs`);
  }
  try {
    return await body();
  } finally {
    const indexName = mechanism.index?.match(/create index (\w+)/)?.[1];
    if (indexName) await db.execute(sql.raw(`drop index ${indexName}`));
  }
}

/** The same submissions with a plain insert (no turns), for what computing turns costs at submit time. */
async function submitPlain(total: number, clients: number): Promise<number> {
  const requests = interleavedRequests(total, clients, "plain-");
  const started = performance.now();
  for (let i = 0; i < requests.length; i += SUBMIT_BATCH) {
    const batch = requests.slice(i, i + SUBMIT_BATCH);
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, request, use_case)
      select * from unnest(${sql.param(batch.map(() => randomBytes(8).toString("hex")))}::text[], ${sql.param(batch.map((r) => r.ix_client_id))}::text[],
                           ${sql.param(batch.map((r) => r.request_id))}::text[], ${sql.param(batch.map((r) => JSON.stringify(r)))}::jsonb[],
                           ${sql.param(batch.map((r) => r.use_case))}::text[])
      on conflict do nothing
      returning *, pg_notify('ix_jobs_pending', '')`);
  }
  return performance.now() - started;
}

interface LatencyRow {
  mechanism: string;
  clients: number;
  limit: number;
  p50: number;
  p99: number;
  secondRows: number;
}
interface FairnessRow {
  mechanism: string;
  limit: number;
  aBefore: number;
  claims: number;
  shortClaims: number;
  seconds: number;
}
const latencyRows: LatencyRow[] = [];
const fairnessRows: FairnessRow[] = [];

try {
  await migrateUp(db);
  log(`${flags.pending} pending jobs over ${flags.clients.join(", ")} clients, ${flags.terminalRows} terminal rows, ${flags.samples} samples`);
  for (const clients of flags.clients) {
    await db.execute(sql`truncate ix_jobs`);
    const plainMs = await submitPlain(flags.pending, clients);
    await db.execute(sql`truncate ix_jobs`);
    if (flags.terminalRows > 0) {
      await db.execute(sql`
        insert into ix_jobs (ix_id, client_id, request_id, use_case, status, request, response, created_at, started_at, finished_at)
        select lpad(to_hex(g), 16, '0'), 'client-' || (g % ${clients}::int), 't' || g, ${FAIR_USE_CASE}, 'done', '{}'::jsonb, '{}'::jsonb,
               now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
        from generate_series(1, ${flags.terminalRows}::int) as g`);
    }
    const turnsMs = await submit(db, interleavedRequests(flags.pending, clients, "p-"));
    await db.execute(sql`vacuum analyze ix_jobs`);
    out({
      system: "ix-fair-share-submit",
      clients,
      jobs: flags.pending,
      with_turns_jobs_per_s: round(flags.pending / (turnsMs / 1000)),
      plain_insert_jobs_per_s: round(flags.pending / (plainMs / 1000)),
    });
    for (const mechanism of picked) {
      await withIndex(mechanism, async () => {
        for (const limit of LIMITS) {
          const samples: number[] = [];
          for (let i = 0; i < flags.samples; i++) {
            await rolledBack(db, async (tx) => {
              const started = performance.now();
              const runs = await mechanism.claim(tx, limit);
              samples.push(performance.now() - started);
              if (runs.length !== Math.min(limit, flags.pending)) throw new Error(`${mechanism.name}: a claim of ${limit} returned ${runs.length} jobs`);
            });
          }
          // A second claimer while the first holds its rows: SKIP LOCKED semantics take the next rows, without waiting.
          const { second, overlap } = await rolledBack(db, async (first) => {
            const held = new Set((await mechanism.claim(first, limit)).map((r) => r.jobId));
            const others = await rolledBack(db, async (tx) => {
              await tx.execute(sql`set local statement_timeout = 5000`);
              return mechanism.claim(tx, limit);
            });
            return { second: others.length, overlap: others.filter((r) => held.has(r.jobId)).length };
          });
          if (overlap > 0) throw new Error(`${mechanism.name}: two claimers got the same job`);
          const row = { mechanism: mechanism.name, clients, limit, p50: percentile(samples, 50), p99: percentile(samples, 99), secondRows: second };
          latencyRows.push(row);
          out({
            system: "ix-fair-share-claim",
            mechanism: mechanism.name,
            pending: flags.pending,
            clients,
            terminal_rows: flags.terminalRows,
            limit,
            claim_p50_ms: round(row.p50),
            claim_p99_ms: round(row.p99),
            second_claimer_rows: second,
          });
        }
      });
    }
  }

  if (flags.fairnessJobs > 0) {
    log(`fairness: A submits ${flags.fairnessJobs} jobs, then B ${LATE_JOBS}; ${flags.loops} claim+complete loops`);
    for (const mechanism of picked) {
      await withIndex(mechanism, async () => {
        for (const limit of LIMITS) {
          const started = performance.now();
          const run = await runFairness(db, { a: flags.fairnessJobs, c: flags.loops, limit, claim: mechanism.claim });
          const seconds = (performance.now() - started) / 1000;
          fairnessRows.push({ mechanism: mechanism.name, limit, aBefore: run.aStartedBeforeBLast, claims: run.claims, shortClaims: run.shortClaims, seconds });
          out({
            system: "ix-fair-share-fairness",
            mechanism: mechanism.name,
            limit,
            loops: flags.loops,
            a_jobs: flags.fairnessJobs,
            b_jobs: LATE_JOBS,
            a_started_before_b_last: run.aStartedBeforeBLast,
            claims: run.claims,
            short_claims: run.shortClaims,
            seconds: round(seconds),
          });
        }
      });
    }
  }

  // The summary BENCHMARKS.md quotes: one row per mechanism.
  const cell = (m: string, clients: number, limit: number) => {
    const r = latencyRows.find((x) => x.mechanism === m && x.clients === clients && x.limit === limit);
    return r ? `${round(r.p50)} / ${round(r.p99)}` : "";
  };
  const header = ["mechanism", ...flags.clients.flatMap((k) => LIMITS.map((l) => `${k} client${k === 1 ? "" : "s"}, claim ${l}`))];
  const lines = [
    `| ${header.join(" | ")} | 2nd claimer gets (claim 16) | A's started before B's last (claim 1 / 16) |`,
    `| ${header.map(() => "---").join(" | ")} | --- | --- |`,
  ];
  for (const m of picked) {
    const second = latencyRows.filter((r) => r.mechanism === m.name && r.limit === 16).map((r) => r.secondRows);
    const fair = LIMITS.map((l) => fairnessRows.find((f) => f.mechanism === m.name && f.limit === l)?.aBefore ?? "–");
    lines.push(
      `| ${[m.name, ...flags.clients.flatMap((k) => LIMITS.map((l) => cell(m.name, k, l)))].join(" | ")} | ${[...new Set(second)].join("/")} | ${fair.join(" / ")} |`,
    );
  }
  console.log(`\nclaim p50 / p99 ms, ${flags.pending} pending, ${flags.terminalRows} terminal rows\n${lines.join("\n")}`);
} finally {
  await db.close();
  await admin.execute(sql.raw(`drop database if exists ${name} with (force)`));
  await admin.close();
}
