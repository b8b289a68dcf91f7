import { fileURLToPath } from "node:url";
import { type Database, jobs, sql } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import { listeningWorkers } from "../src/activity.ts";
import { printFigures } from "../src/figures.ts";
import { type IxProcess, killAll, type Line, spawnIx } from "../src/processes.ts";
import { type Receiver, startReceiver } from "../src/receivers.ts";
import { waitFor } from "../src/wait.ts";

/**
 * One client's bad job must cost only that job (issue 11): a response the
 * database refuses, a row written past validation, a callback receiver that
 * never answers. Each repro runs against real worker (and API) processes; the
 * bad client's job ends `error` (or its callback is paused) while the other
 * client's jobs end `done`, with their results and callbacks, and nothing the
 * clients sent appears in any log line.
 */

const PIPELINES = fileURLToPath(new URL("../src/neighbour-pipelines.ts", import.meta.url));
const TEXT = "ALICE-CONFIDENTIAL-TEXT";
const TOKEN = "SECRET-ALICE-TOKEN";

function workerEnv(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    IX_POSTGRES_URL: url,
    IX_WORKER_CONCURRENCY: "4",
    IX_WORKER_POLL_INTERVAL_SECONDS: "0.2",
    IX_PIPELINE_MODULES: PIPELINES,
    IX_CALLBACK_ALLOWED_HOSTS: "127.0.0.1",
    IX_LOG_LEVEL: "info",
    ...extra,
  };
}

async function submit(
  db: Database,
  { clientId, requestId, useCase = "nap", options, texts = ["t"], callbackUrl = null }: {
    clientId: string;
    requestId: string;
    useCase?: "nap" | "together";
    options: Record<string, unknown>;
    texts?: string[];
    callbackUrl?: string | null;
  },
) {
  const { job } = await jobs.insertPending(db, {
    request: { use_case: useCase, ix_client_id: clientId, request_id: requestId, context: { texts }, options },
    callbackUrl,
  });
  return job;
}

/** Every log line a process wrote, as text: what must not hold the clients' data. */
function logText(process: IxProcess): string {
  return process.lines.map((line: Line) => JSON.stringify(line)).join("\n") + process.stderr();
}

describe("one client's bad job does not cost the other client's jobs", () => {
  test("a response the database refuses ends only its job error; the batch's other responses are stored", { timeout: 60_000 }, async ({
    database: { db, url },
  }) => {
    const processes: IxProcess[] = [];
    try {
      // One group of four: the pipeline holds each run until all four started, so their responses share one statement.
      const group = { group: "g1", size: 4 };
      const alice = await submit(db, {
        clientId: "alice",
        requestId: "a-1",
        useCase: "together",
        options: { ...group, decode: true },
        texts: [`${TEXT} \\u0000 from a scanned page`],
      });
      const bobs = await Promise.all(
        [1, 2, 3].map((i) => submit(db, { clientId: "bob", requestId: `b-${i}`, useCase: "together", options: group, texts: [`bob's invoice ${i}`] })),
      );
      // The barrier is memory the four runs share, so they run inline: threads are the isolation fault's subject.
      const worker = spawnIx("worker", workerEnv(url, { IX_PIPELINE_ISOLATION: "inline" }));
      processes.push(worker);
      const all = [alice, ...bobs].map((j) => j.job_id);
      await waitFor("all four jobs to finish", async () => {
        const finished = await Promise.all(all.map(async (id) => (await jobs.get(db, id))?.finished_at));
        return finished.every((f) => f !== null && f !== undefined);
      });
      const stored = await Promise.all(all.map((id) => jobs.get(db, id)));
      const [a, ...b] = stored;
      const sameStatement = await db.execute<{ n: number }>(
        sql`select count(distinct finished_at)::int as n from ix_jobs where job_id = any(${sql.param(all)}::uuid[])`,
      );
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
      printFigures("neighbours-completion", {
        batch: all.length,
        statements_finishing_batch: sameStatement.rows[0]?.n ?? -1,
        ended_error: stored.filter((j) => j?.status === "error").length,
        done_with_result: b.filter((j) => j?.status === "done" && j.response?.result !== null).length,
        reruns: stored.reduce((sum, j) => sum + (j?.attempts ?? 0), 0),
        error: JSON.stringify(a?.response?.error),
      });

      expect(a).toMatchObject({ status: "error", attempts: 0, response: { error: "response could not be stored: 22P05 unsupported Unicode escape sequence", result: null } });
      for (const [i, job] of b.entries()) {
        expect(job).toMatchObject({ status: "done", attempts: 0, response: { error: null, result: { text: `bob's invoice ${i + 1}` } } });
      }
      // The four were finished together: the split happened inside one batch, not because they arrived apart.
      expect(sameStatement.rows[0]?.n).toBe(1);
      expect(worker.lines.filter((l) => l.msg === "response could not be stored as the pipeline made it")).toMatchObject([
        { job_id: alice.job_id, reason: "22P05 unsupported Unicode escape sequence", stored_as_error: true },
      ]);
      expect(worker.lines.some((l) => l.msg === "storing responses failed; the jobs stay running for the rescuer")).toBe(false);
      expect(logText(worker)).not.toContain(TEXT);
    } finally {
      killAll(processes);
    }
  });

  test("a row written past validation ends error alone: the claim, the listing and the API go on", { timeout: 60_000 }, async ({
    database: { db, url },
  }) => {
    const processes: IxProcess[] = [];
    try {
      // What the issue found: a cast past the repo's validation committed, then broke every read of the client.
      const cast = { use_case: "nap", ix_client_id: "alice", request_id: "a-cast", context: {}, options: { ms: 1 } };
      await expect(jobs.insertPending(db, { request: cast as never })).rejects.toThrow(/^invalid request: context: must hold at least one text or file$/);
      // The same row written by hand (an older version, psql): it must still cost nobody else.
      const poison = await submit(db, { clientId: "alice", requestId: "a-poison", options: { ms: 1 } });
      await db.execute(sql`update ix_jobs set request = request - 'context' where job_id = ${poison.job_id}`);
      const bobs = await Promise.all([1, 2, 3].map((i) => submit(db, { clientId: "bob", requestId: `b-${i}`, options: { ms: 5 } })));
      const mine = await submit(db, { clientId: "alice", requestId: "a-good", options: { ms: 5 } });

      const api = spawnIx("api", { IX_POSTGRES_URL: url, IX_API_PORT: "0", IX_LOG_LEVEL: "warn" });
      processes.push(api);
      const worker = spawnIx("worker", workerEnv(url));
      processes.push(worker);
      const ids = [poison, ...bobs, mine].map((j) => j.job_id);
      await waitFor("every job to finish", async () => {
        const result = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where finished_at is not null`);
        return result.rows[0]?.n === ids.length;
      });
      const { url: apiUrl } = (await api.waitForLine("listening", (l) => l.fault === "listening")) as { url: string };
      const list = await fetch(`${apiUrl}/jobs?client_id=alice`);
      const listed = (await list.json()) as { items: Array<{ job_id: string }> };
      const one = await fetch(`${apiUrl}/jobs/${mine.job_id}`);
      await one.arrayBuffer();
      const statuses = await db.execute<{ job_id: string; status: string; error: string | null; attempts: number }>(
        sql`select job_id, status, response->>'error' as error, attempts from ix_jobs`,
      );
      const byId = new Map(statuses.rows.map((r) => [r.job_id, r]));
      expect(await worker.stop()).toEqual({ code: 0, signal: null });
      printFigures("neighbours-poison-row", {
        claimed_with_poison: ids.length,
        poison_status: byId.get(poison.job_id)?.status ?? "?",
        others_done: [...bobs, mine].filter((j) => byId.get(j.job_id)?.status === "done").length,
        reruns: statuses.rows.reduce((sum, r) => sum + r.attempts, 0),
        list_status: list.status,
        listed_items: listed.items.length,
      });

      expect(byId.get(poison.job_id)).toMatchObject({
        status: "error",
        attempts: 0,
        error: "job cannot run: its stored row is not a valid job (request.context: Invalid input: expected object, received undefined)",
      });
      for (const job of [...bobs, mine]) expect(byId.get(job.job_id)).toMatchObject({ status: "done", attempts: 0 });
      expect(list.status).toBe(200);
      expect(listed.items.map((j) => j.job_id)).toEqual([mine.job_id]);
      expect(one.status).toBe(200);
      expect(worker.lines.filter((l) => l.msg === "job row is not a valid job")).toMatchObject([
        { job_id: poison.job_id, client_id: "alice", outcome: "ended error" },
      ]);
      expect(worker.lines.some((l) => l.msg === "claiming jobs failed")).toBe(false);
    } finally {
      killAll(processes);
    }
  });

  test("alice's 200 callbacks to a receiver that never answers: bob's arrives at once, her host is paused", { timeout: 90_000 }, async ({
    database: { db, url },
  }) => {
    const hanging = await startReceiver(() => undefined);
    const healthy = await startReceiver((res) => res.writeHead(204).end());
    const receivers: Receiver[] = [hanging, healthy];
    const processes: IxProcess[] = [];
    const timeoutSeconds = 5;
    const breakerFailures = 4;
    try {
      const worker = spawnIx(
        "worker",
        workerEnv(url, {
          IX_CALLBACK_TIMEOUT_SECONDS: String(timeoutSeconds),
          IX_CALLBACK_BREAKER_FAILURES: String(breakerFailures),
          IX_CALLBACK_BREAKER_COOLDOWN_SECONDS: "600",
        }),
      );
      processes.push(worker);
      await waitFor("the worker to listen", async () => (await listeningWorkers(db)) === 1);
      const alice: string[] = [];
      for (let i = 0; i < 200; i++) {
        alice.push((await submit(db, { clientId: "alice", requestId: `a-${i}`, options: { ms: 1 }, callbackUrl: `${hanging.url}?token=${TOKEN}` })).job_id);
      }
      await waitFor("alice's first deliveries to hang", () => hanging.received.length >= 2);
      const submittedAt = Date.now();
      const bob = await submit(db, { clientId: "bob", requestId: "b-1", options: { ms: 1 }, callbackUrl: healthy.url });
      await waitFor("bob's callback", () => healthy.received.length === 1, { timeoutMs: 60_000, intervalMs: 5 });
      const bobLatencyMs = Date.now() - submittedAt;
      // Measured when bob's arrived: how many of alice's deliveries were in flight, and whether any had ended yet.
      const aliceInFlightAtBob = hanging.received.length;
      const endedBeforeBob = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from ix_jobs where client_id = 'alice' and callback_last_error is not null`,
      );

      const host = new URL(hanging.url).host;
      const paused = await waitFor(
        "alice's host to be paused",
        async () => {
          const rows = await db.execute<{ paused_until: Date; failures: number }>(
            sql`select paused_until, consecutive_failures as failures from ix_callback_hosts where host = ${host} and paused_until > now()`,
          );
          return rows.rows[0];
        },
        { timeoutMs: 60_000 },
      );
      // Deliveries already in flight when the breaker opened end (each at the timeout); nothing new starts.
      await waitFor(
        "alice's in-flight deliveries to end",
        async () => {
          const leased = await db.execute<{ n: number }>(
            sql`select count(*)::int as n from ix_jobs where client_id = 'alice' and callback_attempts > 0 and callback_last_error is null`,
          );
          return leased.rows[0]?.n === 0;
        },
        { timeoutMs: 30_000 },
      );
      const state = await db.execute<{ attempts: number; waiting: number; before_pause_end: number }>(sql`
        select coalesce(sum(callback_attempts), 0)::int as attempts,
          count(*) filter (where callback_status is null)::int as waiting,
          count(*) filter (where callback_status is null
            and callback_next_attempt_at < (select paused_until from ix_callback_hosts where host = ${host}))::int as before_pause_end
        from ix_jobs where client_id = 'alice'`);
      const { attempts, waiting, before_pause_end: beforePauseEnd } = state.rows[0]!;
      const requestsSeen = hanging.received.length;
      expect(await worker.stop()).toEqual({ code: 0, signal: null });

      printFigures("neighbours-callbacks", {
        alice_callbacks: alice.length,
        bob_callback_latency_ms: bobLatencyMs,
        alice_in_flight_when_bob_arrived: aliceInFlightAtBob,
        alice_attempts_ended_before_bob: endedBeforeBob.rows[0]?.n ?? -1,
        breaker_failures_at_pause: paused.failures,
        alice_attempts_spent: attempts,
        alice_requests_seen: requestsSeen,
        alice_waiting_out_pause: waiting,
        alice_due_inside_pause: beforePauseEnd,
      });

      expect(healthy.received[0]?.headers["webhook-id"]).toBe(bob.job_id);
      // Bob's callback came while alice's first attempts still hung: it waited for none of her timeouts.
      expect(endedBeforeBob.rows[0]?.n).toBe(0);
      // The per-host cap: alice's dead receiver never held more than two of the worker's eight delivery slots.
      expect(aliceInFlightAtBob).toBe(2);
      expect((await jobs.get(db, bob.job_id))?.callback_status).toBe("delivered");
      // The breaker opened after N failures; at most the two in flight then were spent on top, and every
      // other delivery of hers waits for the pause's end with its attempts unspent.
      expect(paused.failures).toBeGreaterThanOrEqual(breakerFailures);
      expect(attempts).toBeLessThanOrEqual(breakerFailures + 2);
      expect(attempts).toBe(requestsSeen);
      expect(waiting).toBe(alice.length);
      expect(beforePauseEnd).toBe(0);
      expect(logText(worker)).not.toContain(TOKEN);
      expect(worker.lines.some((l) => l.msg === "callback host paused: its deliveries wait out the cool-down without spending attempts")).toBe(true);
    } finally {
      killAll(processes);
      await Promise.all(receivers.map((r) => r.close()));
    }
  });
});
