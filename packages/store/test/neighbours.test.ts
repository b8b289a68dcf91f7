import type { Job, ResponseIX } from "@ix/contracts";
import { describe, expect } from "vitest";
import { ixJobs, jobs, sql } from "../src/index.ts";
import type { UnreadableRow } from "../src/jobs/row.ts";
import { callbackState, insertJob, later, request, responseFor, test } from "./fixtures.ts";

// One client's bad data must cost only that client's job: a completion the
// database refuses, a row written past validation, an unreachable callback host.

async function claimAll(db: Parameters<typeof jobs.claimPending>[0], n: number): Promise<Job[]> {
  for (let i = 0; i < n; i++) await jobs.insertPending(db, { request: request({ ix_client_id: i === 0 ? "alice" : "bob" }) });
  return jobs.claimPending(db, { limit: n });
}

function withResult(job: Job, result: Record<string, unknown>): ResponseIX {
  return { ...responseFor(job), result };
}

async function statuses(db: Parameters<typeof jobs.get>[0], ids: string[]) {
  return Promise.all(ids.map(async (id) => (await jobs.get(db, id))?.status));
}

describe("completeMany: the database refuses one response of a batch", () => {
  test("a NUL character in alice's result ends only her job error; bob's three are stored with their results", async ({
    database: { db },
  }) => {
    const [alice, ...bobs] = await claimAll(db, 4);
    const failures: jobs.UnstorableCompletion[] = [];
    const applied = await jobs.completeMany(
      db,
      [
        { jobId: alice!.job_id, attempts: 0, response: withResult(alice!, { text: "Alice's text\u0000 with a NUL" }) },
        ...bobs.map((b) => ({ jobId: b.job_id, attempts: 0, response: withResult(b, { total: "10.00" }) })),
      ],
      { onUnstorable: (f) => failures.push(f) },
    );
    expect(applied.sort()).toEqual([alice!, ...bobs].map((j) => j.job_id).sort());
    const stored = await jobs.get(db, alice!.job_id);
    expect(stored?.status).toBe("error");
    expect(stored?.response?.error).toBe("response could not be stored: 22P05 unsupported Unicode escape sequence");
    expect(stored?.response?.result).toBeNull();
    // The response's identity and timing are still the run's.
    expect(stored?.response).toMatchObject({ ix_client_id: "alice", request_id: alice!.request_id, metadata: { attempt: 1 } });
    for (const b of bobs) expect((await jobs.get(db, b.job_id))?.response?.result).toEqual({ total: "10.00" });
    expect(await statuses(db, bobs.map((b) => b.job_id))).toEqual(["done", "done", "done"]);
    expect(failures).toEqual([
      { jobId: alice!.job_id, reason: "22P05 unsupported Unicode escape sequence", storedAsError: true },
    ]);
    // The reason quotes no part of the refused value.
    expect(JSON.stringify(stored?.response)).not.toContain("Alice's text");
  });

  test("two offenders among eight are both found; a lone surrogate is refused like a NUL", async ({ database: { db } }) => {
    const claimed = await claimAll(db, 8);
    const bad = new Set([claimed[2]!.job_id, claimed[7]!.job_id]);
    const completions = claimed.map((job, i) => ({
      jobId: job.job_id,
      attempts: 0,
      response: withResult(job, { text: i === 2 ? "a\u0000b" : i === 7 ? "half \ud800 a pair" : "fine" }),
    }));
    expect((await jobs.completeMany(db, completions)).length).toBe(8);
    for (const job of claimed) {
      const stored = await jobs.get(db, job.job_id);
      if (bad.has(job.job_id)) expect(stored?.response?.error).toMatch(/^response could not be stored: 22P0[25] /);
      else expect(stored).toMatchObject({ status: "done", response: { result: { text: "fine" } } });
    }
  });

  test("a result that is not JSON or a response that breaks the contract fails alone, before any statement", async ({
    database: { db },
  }) => {
    const [a, b, c] = await claimAll(db, 3);
    const applied = await jobs.completeMany(db, [
      { jobId: a!.job_id, attempts: 0, response: withResult(a!, { n: 10n }) },
      { jobId: b!.job_id, attempts: 0, response: { ...responseFor(b!), metadata: { attempt: 0 } } as unknown as ResponseIX },
      { jobId: c!.job_id, attempts: 0, response: responseFor(c!) },
    ]);
    expect(applied.sort()).toEqual([a!.job_id, b!.job_id, c!.job_id].sort());
    expect((await jobs.get(db, a!.job_id))?.response?.error).toBe(
      "response could not be stored: its result is not JSON (Do not know how to serialize a BigInt)",
    );
    expect((await jobs.get(db, b!.job_id))?.response?.error).toMatch(
      /^response could not be stored: it breaks the ResponseIX contract \(metadata\.pipeline: /,
    );
    expect((await jobs.get(db, c!.job_id))?.status).toBe("done");
  });

  test("the fence still holds on the split path: a stale run's refused response changes nothing", async ({ database: { db } }) => {
    const [stale, fresh] = await claimAll(db, 2);
    const failures: jobs.UnstorableCompletion[] = [];
    const applied = await jobs.completeMany(
      db,
      [
        { jobId: stale!.job_id, attempts: 5, response: withResult(stale!, { text: "\u0000" }) },
        { jobId: fresh!.job_id, attempts: 0, response: responseFor(fresh!) },
      ],
      { onUnstorable: (f) => failures.push(f) },
    );
    expect(applied).toEqual([fresh!.job_id]);
    expect((await jobs.get(db, stale!.job_id))?.status).toBe("running");
    expect(failures).toMatchObject([{ jobId: stale!.job_id, storedAsError: false }]);
  });

  test("inside a caller's transaction a refusal leaves the transaction usable and commits with it", async ({ database: { db } }) => {
    const [a, b] = await claimAll(db, 2);
    await db.transaction(async (tx) => {
      const applied = await jobs.completeMany(tx, [
        { jobId: a!.job_id, attempts: 0, response: withResult(a!, { text: "\u0000" }) },
        { jobId: b!.job_id, attempts: 0, response: responseFor(b!) },
      ]);
      expect(applied.sort()).toEqual([a!.job_id, b!.job_id].sort());
      // Still usable: a failed statement would have aborted it.
      await tx.execute(sql`select 1`);
    });
    expect(await statuses(db, [a!.job_id, b!.job_id])).toEqual(["error", "done"]);
  });

  test("an error no single row can cause is thrown for the batch, as before", async ({ database: { db } }) => {
    const [a] = await claimAll(db, 1);
    await db.execute(sql`alter table ix_jobs rename column response to response_gone`);
    await expect(jobs.completeMany(db, [{ jobId: a!.job_id, attempts: 0, response: responseFor(a!) }])).rejects.toMatchObject({
      cause: { code: "42703" },
    });
    await db.execute(sql`alter table ix_jobs rename column response_gone to response`);
    expect((await jobs.get(db, a!.job_id))?.status).toBe("running");
  });
});

/** A row written past the repo's validation: no texts or files in its request. */
async function insertPoison(db: Parameters<typeof jobs.get>[0], clientId: string, callbackUrl: string | null = null): Promise<string> {
  const valid = await insertJob(db, { request: request({ ix_client_id: clientId }), callbackUrl });
  await db.execute(sql`update ix_jobs set request = request - 'context' where job_id = ${valid.job_id}`);
  return valid.job_id;
}

describe("a row that is not a valid Job affects only itself", () => {
  test("a claim ends it error with the reason and returns its neighbours", async ({ database: { db } }) => {
    const before = await jobs.insertPending(db, { request: request({ ix_client_id: "bob" }) });
    const poison = await insertPoison(db, "alice", "https://hooks.example/cb?token=SECRET");
    const after = await jobs.insertPending(db, { request: request({ ix_client_id: "bob" }) });
    const reported: Array<[UnreadableRow, string]> = [];
    const claimed = await jobs.claimPending(db, { limit: 10, onUnreadable: (row, outcome) => reported.push([row, outcome]) });
    expect(claimed.map((j) => j.job_id)).toEqual([before.job.job_id, after.job.job_id]);
    expect(reported).toEqual([[{ jobId: poison, clientId: "alice", reason: "request.context: Invalid input: expected object, received undefined" }, "ended error"]]);
    const [row] = await db.select().from(ixJobs).where(sql`${ixJobs.jobId} = ${poison}`);
    expect(row?.status).toBe("error");
    expect(row?.response?.error).toBe(
      "job cannot run: its stored row is not a valid job (request.context: Invalid input: expected object, received undefined)",
    );
    expect(await jobs.claimPending(db, { limit: 10 })).toEqual([]);

    // Its callback cannot be sent (no valid Job to send): the delivery ends failed, the claim goes on.
    await jobs.completeMany(db, claimed.map((j) => ({ jobId: j.job_id, attempts: 0, response: responseFor(j) })));
    const delivered: Array<[UnreadableRow, string]> = [];
    expect(await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30, onUnreadable: (r, o) => delivered.push([r, o]) })).toEqual([]);
    expect(delivered.map(([r, o]) => [r.jobId, o])).toEqual([[poison, "delivery failed"]]);
    const [settled] = await db.select().from(ixJobs).where(sql`${ixJobs.jobId} = ${poison}`);
    expect(settled).toMatchObject({ callbackStatus: "failed", callbackNextAttemptAt: null });
    expect(settled?.callbackLastError).toMatch(/^not sent: the job's stored row is not a valid job \(request\.context: /);
  });

  test("reads skip it and report it: get answers null, a listing pages past it", async ({ database: { db } }) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(i === 2 ? await insertPoison(db, "alice") : (await jobs.insertPending(db, { request: request({ ix_client_id: "alice" }) })).job.job_id);
    }
    const skipped: string[] = [];
    const onUnreadable = (row: UnreadableRow) => skipped.push(row.jobId);
    expect(await jobs.get(db, ids[2]!, { onUnreadable })).toBeNull();
    expect(await jobs.get(db, ids[1]!, { onUnreadable })).not.toBeNull();
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await jobs.listJobs(db, { clientId: "alice", limit: 2, onUnreadable, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((j) => j.job_id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([ids[4], ids[3], ids[1], ids[0]]);
    expect(skipped).toEqual([ids[2], ids[2]]);
  });

  test("insertPending with a cast throws a clear error and writes nothing", async ({ database: { db } }) => {
    const bad = { ...request({ ix_client_id: "alice" }), context: {} } as unknown as Parameters<typeof jobs.insertPending>[1]["request"];
    await expect(jobs.insertPending(db, { request: bad })).rejects.toThrow(
      new jobs.InvalidJobInputError("invalid request: context: must hold at least one text or file"),
    );
    await expect(
      jobs.insertPendingMany(db, [{ request: request() }, { request: request(), callbackUrl: "ftp://x/" }]),
    ).rejects.toThrow(/^invalid callbackUrl \(item 1\): must be an http or https URL$/);
    const count = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs`);
    expect(count.rows[0]?.n).toBe(0);
  });
});

describe("due callbacks are claimed fairly", () => {
  async function dueJob(db: Parameters<typeof jobs.get>[0], clientId: string, host: string, dueSecondsAgo: number) {
    return insertJob(db, {
      status: "done",
      request: request({ ix_client_id: clientId }),
      callbackUrl: `https://${host}/hook?token=t`,
      callbackNextAttemptAt: new Date(Date.now() - dueSecondsAgo * 1000),
    });
  }

  test("round robin across clients: bob's one delivery comes before alice's backlog", async ({ database: { db } }) => {
    for (let i = 0; i < 20; i++) await dueJob(db, "alice", `a${i}.example`, 100 - i);
    const bob = await dueJob(db, "bob", "bob.example", 1);
    const claimed = await jobs.claimDueCallbacks(db, { limit: 2, leaseSeconds: 30 });
    expect(claimed.map((d) => d.job.client_id).sort()).toEqual(["alice", "bob"]);
    expect(claimed.find((d) => d.job.client_id === "bob")).toMatchObject({ job: { job_id: bob.job_id }, host: "bob.example", attempt: 1 });
  });

  test("a host at its cap gets nothing more; other clients' hosts fill the claim", async ({ database: { db } }) => {
    for (let i = 0; i < 10; i++) await dueJob(db, "alice", "Dead.Example:8443", 100 - i);
    for (let i = 0; i < 3; i++) await dueJob(db, "bob", "live.example", 50 - i);
    for (let i = 0; i < 3; i++) await dueJob(db, "carol", `live-${i}.example`, 50 - i);
    const claimed = await jobs.claimDueCallbacks(db, {
      limit: 10,
      leaseSeconds: 30,
      hostCap: { perHost: 2, busy: new Map([["dead.example:8443", 1]]) },
    });
    const byHost = new Map<string, number>();
    for (const d of claimed) byHost.set(d.host, (byHost.get(d.host) ?? 0) + 1);
    expect(Object.fromEntries(byHost)).toEqual({
      "dead.example:8443": 1,
      "live.example": 2,
      "live-0.example": 1,
      "live-1.example": 1,
      "live-2.example": 1,
    });
  });

  test("within one client, deliveries behind its oldest `limit` wait, even to another host: only that client waits", async ({
    database: { db },
  }) => {
    for (let i = 0; i < 4; i++) await dueJob(db, "alice", "dead.example", 100 - i);
    await dueJob(db, "alice", "live.example", 50);
    const busy = new Map([["dead.example", 2]]);
    expect(await jobs.claimDueCallbacks(db, { limit: 4, leaseSeconds: 30, hostCap: { perHost: 2, busy } })).toEqual([]);
    // Once the breaker moves the dead host's deliveries past its pause, hers to live.example is next.
    for (let i = 0; i < 3; i++) await jobs.recordHostHealth(db, { host: "dead.example", health: "failing", breaker: { failures: 3, cooldownSeconds: 60 } });
    const claimed = await jobs.claimDueCallbacks(db, { limit: 4, leaseSeconds: 30, hostCap: { perHost: 2, busy } });
    expect(claimed.map((d) => d.host)).toEqual(["live.example"]);
  });
});

describe("the circuit breaker", () => {
  const breaker = { failures: 3, cooldownSeconds: 60 };

  test("pauses a host after N failures in a row, moves its due deliveries past the pause, and a success closes it", async ({
    database: { db },
  }) => {
    const dead = [];
    for (let i = 0; i < 4; i++) {
      dead.push(await insertJob(db, { status: "done", callbackUrl: "http://dead.example/hook", callbackNextAttemptAt: new Date(Date.now() - 1000) }));
    }
    const other = await insertJob(db, { status: "done", callbackUrl: "http://live.example/hook", callbackNextAttemptAt: new Date(Date.now() - 1000) });
    const report = () => jobs.recordHostHealth(db, { host: "dead.example", health: "failing", breaker });
    expect(await report()).toEqual({ consecutiveFailures: 1, pausedUntil: null, pausedNow: false });
    expect(await report()).toMatchObject({ consecutiveFailures: 2, pausedUntil: null });
    const third = await report();
    expect(third).toMatchObject({ consecutiveFailures: 3, pausedNow: true });
    const pausedUntil = third.pausedUntil!;
    // Due deliveries to the paused host now wait for the pause, attempts unspent.
    for (const job of dead) {
      const state = await callbackState(db, job.job_id);
      expect(state).toMatchObject({ attempts: 0 });
      expect(state?.nextAttemptAt?.getTime()).toBe(pausedUntil.getTime());
    }
    expect(await callbackState(db, other.job_id)).toMatchObject({ attempts: 0 });
    const claimed = await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 3600 });
    expect(claimed.map((d) => d.host)).toEqual(["live.example"]);
    // Even at a claim instant past the rows' own due time but inside the pause: nothing.
    expect(await jobs.claimDueCallbacks(db, { limit: 10, leaseSeconds: 30, now: new Date(pausedUntil.getTime() - 1000) })).toEqual([]);

    // After the pause a probe goes out; one more failure pauses again at once.
    const probe = await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30, now: later(120) });
    expect(probe).toHaveLength(1);
    expect(await jobs.recordHostHealth(db, { host: "dead.example", health: "failing", breaker, now: later(121) })).toMatchObject({
      consecutiveFailures: 4,
      pausedNow: true,
    });
    // A success resets it.
    expect(await jobs.recordHostHealth(db, { host: "dead.example", health: "healthy", breaker })).toEqual({
      consecutiveFailures: 0,
      pausedUntil: null,
      pausedNow: false,
    });
    const left = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_callback_hosts`);
    expect(left.rows[0]?.n).toBe(0);
  });

  test("a retry is never due before its host's pause ends", async ({ database: { db } }) => {
    const job = await insertJob(db, { status: "done", callbackUrl: "http://dead.example/hook" });
    const [delivery] = await jobs.claimDueCallbacks(db, { limit: 1, leaseSeconds: 30 });
    for (let i = 0; i < breaker.failures; i++) await jobs.recordHostHealth(db, { host: "dead.example", health: "failing", breaker });
    expect(
      await jobs.recordCallbackAttempt(db, { jobId: job.job_id, attempt: delivery!.attempt, outcome: { kind: "retry", error: "HTTP 503", delaySeconds: 1 } }),
    ).toBe(true);
    const hosts = await db.execute<{ ms: number }>(sql`select (extract(epoch from paused_until) * 1000)::float8 as ms from ix_callback_hosts`);
    expect((await callbackState(db, job.job_id))?.nextAttemptAt?.getTime()).toBe(Math.floor(hosts.rows[0]!.ms));
  });

  test("failures reported by two workers at once are each counted", async ({ database }) => {
    const [a, b] = [database.connect({ max: 5 }), database.connect({ max: 5 })];
    const many = { failures: 1000, cooldownSeconds: 60 };
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => jobs.recordHostHealth(i % 2 ? a! : b!, { host: "busy.example", health: "failing", breaker: many })),
    );
    const rows = await database.db.execute<{ n: number }>(sql`select consecutive_failures as n from ix_callback_hosts where host = 'busy.example'`);
    expect(rows.rows[0]?.n).toBe(20);
  });
});
