// What fairness costs the callback claim (BENCHMARKS.md, "Fair callback claims"):
//   IX_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx --conditions=source tools/bench/src/callback-claim.ts
// Creates a scratch database, fills it with due callback deliveries spread over
// some clients (and as many hosts), and times one claim of 8 (what a worker's
// dispatcher asks for) with `jobs.claimDueCallbacks`, and with the FIFO
// statement it replaced, for each case. Each claim runs in a transaction that
// is rolled back, so every sample sees the same due set.
import { randomBytes } from "node:crypto";
import { connect, jobs, migrateUp, sql } from "@ix/store";
import { percentile } from "./stats.ts";

const CASES = [
  { rows: 1_000, clients: 50 },
  { rows: 10_000, clients: 50 },
  { rows: 100_000, clients: 50 },
  { rows: 100_000, clients: 5_000 },
];
const SAMPLES = 200;
const REQUEST = sql`'{"use_case":"bench_noop","ix_client_id":"c","request_id":"s","context":{"texts":["bench"]},"options":{}}'::jsonb`;
const RESPONSE = sql`'{"use_case":"bench_noop","ix_client_id":"c","request_id":"s","ix_id":"0000000000000000","error":null,"result":{},"metadata":{"pipeline":"bench_noop","started_at":"2025-01-01T00:00:00.000Z","finished_at":"2025-01-01T00:00:00.000Z","duration_ms":0,"attempt":1}}'::jsonb`;

class Rollback extends Error {}

const serverUrl = process.env.IX_POSTGRES_URL;
if (!serverUrl) throw new Error("set IX_POSTGRES_URL to a server where a scratch database may be created");
const name = `ix_bench_callbacks_${randomBytes(4).toString("hex")}`;
const admin = connect(serverUrl, { max: 1 });
await admin.execute(sql.raw(`create database ${name}`));
const url = new URL(serverUrl);
url.pathname = `/${name}`;
const db = connect(url.href, { max: 2 });
try {
  await migrateUp(db);
  for (const { rows, clients } of CASES) {
    await db.execute(sql`truncate ix_jobs`);
    await db.execute(sql`
      insert into ix_jobs (ix_id, client_id, request_id, use_case, status, request, response, callback_url,
                           callback_next_attempt_at, created_at, started_at, finished_at)
      select lpad(to_hex(g), 16, '0'), 'client-' || (g % ${clients}::int), 'r' || g, 'bench_noop', 'done', ${REQUEST}, ${RESPONSE},
             'https://host-' || (g % ${clients}::int) || '.example/hook?token=t', now() - make_interval(secs => g),
             now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
      from generate_series(1, ${rows}::int) as g`);
    await db.execute(sql`vacuum analyze ix_jobs`);
    const time = async (claim: (tx: typeof db) => Promise<unknown>) => {
      const samples: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        await db
          .transaction(async (tx) => {
            const started = performance.now();
            await claim(tx as unknown as typeof db);
            samples.push(performance.now() - started);
            throw new Rollback();
          })
          .catch((error: unknown) => {
            if (!(error instanceof Rollback)) throw error;
          });
      }
      return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
    };
    const fair = await time((tx) =>
      jobs.claimDueCallbacks(tx, { limit: 8, leaseSeconds: 25, hostCap: { perHost: 2, busy: new Map([["host-1.example", 2]]) } }),
    );
    const fifo = await time((tx) =>
      tx.execute(sql`
        update ix_jobs set callback_attempts = callback_attempts + 1, callback_next_attempt_at = now() + interval '25 seconds'
        where job_id in (select job_id from ix_jobs where callback_next_attempt_at is not null and callback_next_attempt_at <= now()
                           and callback_status is null order by callback_next_attempt_at limit 8 for update skip locked)
        returning *`),
    );
    const round = (ms: number) => Math.round(ms * 100) / 100;
    console.log(
      JSON.stringify({
        system: "ix-callback-claim",
        due_rows: rows,
        clients,
        fair_p50_ms: round(fair.p50),
        fair_p99_ms: round(fair.p99),
        fifo_p50_ms: round(fifo.p50),
        fifo_p99_ms: round(fifo.p99),
      }),
    );
  }
} finally {
  await db.close();
  await admin.execute(sql.raw(`drop database if exists ${name} with (force)`));
  await admin.close();
}
