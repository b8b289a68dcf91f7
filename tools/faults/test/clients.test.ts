import { readdirSync } from "node:fs";
import { connect as connectTcp, type Socket } from "node:net";
import { Problem } from "@ix/contracts";
import { apiConfig, startApi } from "@ix/api";
import { sql } from "@ix/store";
import { describe, expect, registerTestWorker, test } from "@ix/testing";
import fc from "fast-check";
import { printFigures } from "../src/figures.ts";
import { createHttpClient, type RawRequest } from "../src/http-client.ts";
import { killAll, spawnIx } from "../src/processes.ts";
import { pace, waitFor } from "../src/wait.ts";

const KEY_A = "fault-key-for-client-a-0123";
const KEY_B = "fault-key-for-client-b-4567";
const BODY_LIMIT = 16_384;
const RUNS = 10_000;

/** A request and the statuses a correct API may answer it with. */
interface Case {
  kind: string;
  request: RawRequest;
  expect: number[];
}

const json = { "content-type": "application/json", authorization: `Bearer ${KEY_A}` };

function validBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { use_case: "extract_fields", ix_client_id: "client-a", request_id: "will-be-invalid", context: { texts: ["Invoice 42"] }, ...overrides };
}

const post = (kind: string, body: string | Buffer, expected: number[], headers: Record<string, string> = json, chunked = false): Case => ({
  kind,
  request: { method: "POST", path: "/jobs", headers, body, chunked },
  expect: expected,
});

const notAString = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 1 }));

const badJson = fc
  .oneof(
    fc.string({ maxLength: 300, unit: "grapheme" }),
    fc.constantFrom("", " ", "{", "[", '{"use_case":', "{'use_case':'x'}", '{"a":1,}', "NaN", "undefined", '{"a":1}{', "\u0000", '{"a":"\\x"}'),
    fc.nat({ max: 150 }).map((cut) => JSON.stringify(validBody()).slice(0, cut)),
  )
  .filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  })
  .map((text) => post("bad-json", text, [400]));

const protoPoisoning = fc
  .constantFrom('{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}')
  .map((text) => post("proto-poisoning", text.replace(/^\{/, `{${JSON.stringify(validBody()).slice(1, -1)},`), [400]));

const wrongTypes = fc
  .tuple(fc.constantFrom("use_case", "ix_client_id", "request_id", "context", "options", "callback_url", "ix_id"), notAString)
  // Values the contract accepts for that field stay out: null callback_url / ix_id (NaN and ±Infinity
  // serialise to null too: a seed once produced callback_url NaN, a valid request), an object for options.
  .filter(([key, value]) => !((key === "callback_url" || key === "ix_id") && JSON.stringify(value) === "null"))
  .filter(([key, value]) => !(key === "options" && typeof value === "object" && value !== null && !Array.isArray(value)))
  .map(([key, value]) => {
    const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
    // An object for context gets an unknown key, so it can never be a valid context.
    return post("wrong-type", JSON.stringify(validBody({ [key]: key === "context" && isObject ? { ...value, unknown_key: 1 } : value })), [400]);
  });

const missingOrUnknown = fc.oneof(
  fc.constantFrom("use_case", "ix_client_id", "request_id", "context").map((key) => {
    const { [key]: _, ...rest } = validBody();
    return post("missing-field", JSON.stringify(rest), [400]);
  }),
  fc
    .string({ minLength: 1, maxLength: 30 })
    .filter((key) => !["use_case", "ix_client_id", "request_id", "ix_id", "context", "options", "callback_url", "__proto__", "constructor"].includes(key))
    .map((key) => post("unknown-field", JSON.stringify(validBody({ [key]: 1 })), [400])),
);

const hugeStrings = fc
  .tuple(fc.constantFrom(["use_case", 64], ["ix_client_id", 64], ["request_id", 128], ["callback_url", 2_048]), fc.integer({ min: 1, max: 10_000 }))
  .map(([[field, max], extra]) => {
    const value = field === "callback_url" ? `https://example.com/${"a".repeat(Number(max) + extra)}` : "a".repeat(Number(max) + extra);
    return post("huge-string", JSON.stringify(validBody({ [field]: value })), [400]);
  });

/** Strings no identifier field accepts, and text JSONB cannot store. */
const unicodeEdges = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("use_case", "ix_client_id", "request_id"),
      fc.constantFrom("\u0000", "\u0007", "\u001b", "\u007f", "\u0085", "\u009b", "\n"),
      fc.string({ maxLength: 8 }),
    )
    .map(([field, bad, rest]) => post("unicode-control", JSON.stringify(validBody({ [field]: `a${bad}${rest}` })), [400])),
  fc
    .tuple(fc.constantFrom("use_case", "ix_client_id"), fc.constantFrom("é", "😀", "\u202e", "\u200b", "\ufeff", "Ａ", "ß", "İ", "a b"))
    .map(([field, bad]) => post("unicode-identifier", JSON.stringify(validBody({ [field]: `a${bad}` })), [400])),
  fc
    .tuple(fc.constantFrom("\\u0000", "\\ud800", "\\udfff", "\\udbff\\u0041"), fc.constantFrom("text", "option-key", "option-value", "request_id"))
    .map(([jsonEscape, where]) => {
      // Written as JSON escapes by hand: valid JSON that JSONB would reject.
      const marker = "@@BAD@@";
      const body =
        where === "text" ? validBody({ context: { texts: ["ok", `x${marker}`] } })
        : where === "option-key" ? validBody({ options: { [`k${marker}`]: 1 } })
        : where === "option-value" ? validBody({ options: { nested: [{ v: `x${marker}` }] } })
        : validBody({ request_id: `r${marker}` });
      return post("unicode-unstorable", JSON.stringify(body).replace(marker, jsonEscape), [400]);
    }),
);

/** Options nested past the API's 64-level limit, up to thousands deep, written as text (stringifying such a value would overflow this test's stack). */
const deepNesting = fc
  .oneof(fc.tuple(fc.integer({ min: 63, max: 7_500 }), fc.constant(true)), fc.tuple(fc.integer({ min: 63, max: 2_500 }), fc.constant(false)))
  .map(([levels, arrays]) => {
    const [open, close] = arrays ? ["[", "]"] : ['{"k":', "}"];
    const valid = JSON.stringify(validBody({ request_id: "deep" }));
    return post("deep-nesting", `${valid.slice(0, -1)},"options":{"deep":${open.repeat(levels)}1${close.repeat(levels)}}}`, [400]);
  });

/** A callback_url whose host is a non-public IP literal, in spellings the URL parser normalises: refused at submit. */
const privateCallback = fc
  .constantFrom("127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "10.0.0.8", "169.254.169.254", "[::1]", "[::ffff:10.0.0.1]", "[fe80::1]", "0.0.0.0")
  .map((host) => post("private-callback", JSON.stringify(validBody({ callback_url: `http://${host}/hook` })), [400]));

const wrongContentTypes = fc
  .tuple(
    fc.constantFrom("text/plain", "text/html", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream", "application/json-patch+json", "image/png", "application/jsonx"),
    fc.boolean(),
  )
  .map(([type, valid]) => post("wrong-content-type", valid ? JSON.stringify(validBody({ request_id: "ct" })) : "a=1&b=2", [415], { "content-type": type, authorization: `Bearer ${KEY_A}` }));

const oversize = fc
  .tuple(fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 8 }), fc.boolean())
  .map(([size, chunked]) => {
    const text = JSON.stringify(validBody({ context: { texts: ["x".repeat(size)] } }));
    return post(chunked ? "oversize-chunked" : "oversize", text, [413], json, chunked);
  });

const badAuth = fc
  .tuple(
    fc.constantFrom<Record<string, string>>(
      {},
      { authorization: "" },
      { authorization: "Bearer" },
      { authorization: "Bearer " },
      { authorization: `Basic ${Buffer.from(`client-a:${KEY_A}`).toString("base64")}` },
      { authorization: `Bearer ${KEY_A}x` },
      { authorization: `Bearer ${KEY_A.slice(0, -1)}` },
      { authorization: `Bearer ${KEY_A} ${KEY_A}` },
      { authorization: "Bearer fault-key-for-client-c-0000" },
      { authorization: `Token ${KEY_A}` },
    ),
    fc.boolean(),
  )
  // Auth is checked before the body is read: a valid body changes nothing.
  .map(([auth, validPayload]) =>
    post("bad-auth", validPayload ? JSON.stringify(validBody({ request_id: "auth" })) : "{not json", [401], { "content-type": "application/json", ...auth }),
  );

const otherClient = fc.constant(
  post("other-client", JSON.stringify(validBody({ request_id: "other" })), [403], { "content-type": "application/json", authorization: `Bearer ${KEY_B}` }),
);

const badReads = fc
  .oneof(
    fc.string({ maxLength: 60 }).map((id) => ({ path: `/jobs/${encodeURIComponent(id)}`, expect: [400, 404] })),
    fc.uuid().map((id) => ({ path: `/jobs/${id}`, expect: [404] })),
    fc
      .dictionary(fc.constantFrom("client_id", "request_id", "status", "limit", "cursor", "junk"), fc.string({ maxLength: 30 }), { minKeys: 1, maxKeys: 4 })
      .map((query) => ({ path: `/jobs?${new URLSearchParams(query)}`, expect: [200, 400, 404] })),
  )
  .chain((read) =>
    fc.constantFrom("GET", "DELETE", "PUT", "PATCH").map((method): Case => ({
      kind: method === "GET" ? "bad-read" : "bad-method",
      request: { method, path: read.path, headers: { authorization: `Bearer ${KEY_A}` } },
      expect: method === "GET" ? read.expect : [404],
    })),
  );

/** Valid requests with unicode-rich texts, mixed in: they must be stored, and stored exactly. */
const valid = fc
  .array(
    fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" }).filter((s) => !s.includes("\u0000")),
    { minLength: 1, maxLength: 3 },
  )
  .map((texts): Case => ({ kind: "valid", request: { method: "POST", path: "/jobs", headers: json }, expect: [201], texts }) as Case & { texts: string[] });

const hostileRequest = fc.oneof(
  { weight: 3, arbitrary: badJson },
  { weight: 1, arbitrary: protoPoisoning },
  { weight: 3, arbitrary: wrongTypes },
  { weight: 2, arbitrary: missingOrUnknown },
  { weight: 2, arbitrary: hugeStrings },
  { weight: 3, arbitrary: unicodeEdges },
  { weight: 1, arbitrary: deepNesting },
  { weight: 1, arbitrary: privateCallback },
  { weight: 2, arbitrary: wrongContentTypes },
  { weight: 1, arbitrary: oversize },
  { weight: 2, arbitrary: badAuth },
  { weight: 1, arbitrary: otherClient },
  { weight: 2, arbitrary: badReads },
  { weight: 1, arbitrary: valid },
);

/** A connection that writes only what it is told, when it is told: records what came back and when it was closed. */
interface Held {
  kind: string;
  socket: Socket;
  received: string;
  closedAfterMs?: number;
}

async function hold(url: string, kind: string): Promise<Held> {
  const { hostname, port } = new URL(url);
  const socket = connectTcp(Number(port), hostname);
  const openedAt = performance.now();
  const held: Held = { kind, socket, received: "" };
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (held.received += chunk));
  socket.on("error", () => undefined); // a reset is one way of being cut off
  socket.on("close", () => (held.closedAfterMs = Math.round(performance.now() - openedAt)));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return held;
}

/** Writes `text` one character every `everyMs` until it is sent or the socket is gone. */
function trickle(held: Held, text: string, everyMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (held.socket.destroyed || at >= text.length) return clearInterval(timer);
    held.socket.write(text[at++]!);
  }, everyMs);
  held.socket.once("close", () => clearInterval(timer));
}

const statusOf = (held: Held) => /^HTTP\/1\.1 (\d{3}) /.exec(held.received)?.[1] ?? "none";

/** Open file descriptors of a process (Linux /proc); null elsewhere. */
function descriptors(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

function slowPostHead(headers: Record<string, string>): string {
  const lines = Object.entries({ host: "ix.test", "content-type": "application/json", ...headers, "content-length": "100000" });
  return `POST /jobs HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n`;
}

describe("hostile clients against the API over a real socket", () => {
  test(`${RUNS.toLocaleString("en")} fuzzed requests: no 5xx, every refusal a problem, only the valid requests stored`, { timeout: 150_000 }, async ({
    database: { db, connect },
  }) => {
    // The API accepts only use_cases a registered worker serves; no worker runs here, so one is recorded.
    await registerTestWorker(db, ["extract_fields"], { host: "faults" });
    const apiDb = connect({ max: 4, connectionTimeoutMillis: 2_000, statementTimeoutMillis: 5_000, applicationName: "ix-api" });
    const { app, url } = await startApi({
      db: apiDb,
      config: apiConfig({ port: 0, bodyLimitBytes: BODY_LIMIT, apiKeys: [{ clientId: "client-a", key: KEY_A }, { clientId: "client-b", key: KEY_B }] }),
    });
    const client = createHttpClient(url);
    const byStatus = new Map<number, number>();
    const byKind = new Map<string, number>();
    const stored = new Map<string, string[]>();
    let serverErrors = 0;
    try {
      await fc.assert(
        fc.asyncProperty(hostileRequest, async (c) => {
          let request = c.request;
          const texts = (c as Case & { texts?: string[] }).texts;
          const requestId = `valid-${stored.size + 1}`;
          if (c.kind === "valid" && texts) request = { ...request, body: JSON.stringify(validBody({ request_id: requestId, context: { texts } })) };
          const response = await client.send(request);
          byStatus.set(response.status, (byStatus.get(response.status) ?? 0) + 1);
          byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1);
          if (response.status >= 500) serverErrors++;
          const what = `${c.kind}: ${request.method} ${request.path.slice(0, 80)} ${String(request.body ?? "").slice(0, 120)} → ${response.status} ${response.body.slice(0, 200)}`;
          expect(c.expect, what).toContain(response.status);
          if (response.status >= 400) {
            expect(response.headers["content-type"], what).toMatch(/^application\/problem\+json/);
            expect(Problem.parse(JSON.parse(response.body)).status, what).toBe(response.status);
            if (response.status === 401) expect(response.headers["www-authenticate"]).toBe('Bearer realm="ix"');
          }
          if (c.kind === "valid" && texts) {
            // Stored exactly as sent, unicode and all.
            expect(JSON.parse(response.body).request.context.texts, what).toEqual(texts);
            stored.set(requestId, texts);
          }
        }),
        { numRuns: RUNS },
      );
      const rows = await db.execute<{ request_id: string; texts: string[] }>(sql`select request_id, request -> 'context' -> 'texts' as texts from ix_jobs`);
      printFigures("clients", {
        requests: RUNS,
        invalid: RUNS - stored.size,
        valid: stored.size,
        answers_5xx: serverErrors,
        rows_written: rows.rows.length,
        rows_from_invalid: rows.rows.filter((r) => !stored.has(r.request_id)).length,
        ...Object.fromEntries([...byStatus].sort(([a], [b]) => a - b).map(([status, n]) => [`status_${status}`, n])),
      });
      console.log(`[faults] clients by kind: ${[...byKind].map(([k, n]) => `${k}=${n}`).join(" ")}`);
      expect(serverErrors).toBe(0);
      // Every row is one of the valid requests, stored as sent; nothing else was written.
      expect(rows.rows.length).toBe(stored.size);
      for (const row of rows.rows) expect(row.texts).toEqual(stored.get(row.request_id));
      expect([...byStatus.keys()].sort()).toEqual(expect.arrayContaining([201, 400, 401, 403, 404, 413, 415]));
    } finally {
      client.close();
      await app.close();
    }
  });

  test("pool exhaustion: a request that finds no free connection is answered 503 with Retry-After, not queued behind the blocked ones", { timeout: 60_000 }, async ({
    database: { db, connect },
  }) => {
    const connectTimeoutMs = 500;
    await registerTestWorker(db, ["extract_fields"], { host: "faults" });
    const apiDb = connect({ max: 2, connectionTimeoutMillis: connectTimeoutMs, statementTimeoutMillis: 30_000, applicationName: "ix-api" });
    // A submission queued behind a stuck insert statement waits as long as a request waits for a connection.
    const { app, url } = await startApi({
      db: apiDb,
      config: apiConfig({ port: 0, retryAfterSeconds: 4, submitQueueTimeoutMs: connectTimeoutMs }),
    });
    const client = createHttpClient(url);
    const locker = await connect({ max: 1 }).$client.connect();
    try {
      // Both pooled connections get stuck behind a table lock: a submission's insert and a read. (A second
      // POST would not take a connection: it would queue in the submission batcher behind the first.)
      await locker.query("begin");
      await locker.query("lock table ix_jobs in access exclusive mode");
      let blockedSettled = 0;
      const blocked = [
        client.send({ method: "POST", path: "/jobs", headers: { "content-type": "application/json" }, body: JSON.stringify(validBody({ request_id: "blocked" })) }),
        client.send({ method: "GET", path: "/jobs/00000000-0000-4000-8000-00000000000b", headers: {} }),
      ].map((sent) => sent.finally(() => blockedSettled++));
      await waitFor("both API connections to wait on the lock", async () => {
        const waiting = await db.execute<{ n: number }>(sql`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and application_name = 'ix-api' and wait_event_type = 'Lock'`);
        return waiting.rows[0]?.n === 2;
      });

      const startedAt = performance.now();
      const answers = await Promise.all([
        client.send({ method: "GET", path: "/jobs/00000000-0000-4000-8000-000000000000", headers: {} }),
        client.send({ method: "POST", path: "/jobs", headers: { "content-type": "application/json" }, body: JSON.stringify(validBody({ request_id: "third" })) }),
        client.send({ method: "GET", path: "/readyz", headers: {} }),
      ]);
      const elapsedMs = Math.round(performance.now() - startedAt);
      // Answered while the two blocked requests still held the pool: by the pool's timeout, not the lock's release.
      expect(blockedSettled).toBe(0);
      for (const answer of answers) {
        expect(answer.status).toBe(503);
        expect(answer.headers["retry-after"]).toBe("4");
        expect(Problem.parse(JSON.parse(answer.body)).type).toBe("https://ix.dev/problems/unavailable");
      }

      await locker.query("commit");
      const released = await Promise.all(blocked);
      expect(released.map((r) => r.status)).toEqual([201, 404]);
      const rows = await db.execute<{ request_id: string }>(sql`select request_id from ix_jobs order by request_id`);
      expect(rows.rows.map((r) => r.request_id)).toEqual(["blocked"]);
      printFigures("pool-exhaustion", {
        pool_size: 2,
        connect_timeout_ms: connectTimeoutMs,
        answers_503: answers.length,
        slowest_503_ms: elapsedMs,
        blocked_then_answered: released.length,
      });
    } finally {
      await locker.query("rollback").catch(() => undefined);
      locker.release();
      client.close();
      await app.close();
    }
  });
  test("slow bodies, slow headers and idle connections against a real `ix api` process: each cut off by its deadline, the API serving throughout; a flood past the connection cap bounded", { timeout: 90_000 }, async ({
    database: { db, url: databaseUrl },
  }) => {
    const timeouts = { headersMs: 2_000, requestMs: 4_000, keepAliveMs: 1_000 };
    await registerTestWorker(db, ["extract_fields"], { host: "faults" });
    const cap = 300;
    const api = spawnIx("api", {
      IX_POSTGRES_URL: databaseUrl,
      IX_API_PORT: "0",
      IX_API_KEYS: `client-a:${KEY_A}`,
      IX_API_HEADERS_TIMEOUT_MS: String(timeouts.headersMs),
      IX_API_REQUEST_TIMEOUT_MS: String(timeouts.requestMs),
      IX_API_KEEP_ALIVE_TIMEOUT_MS: String(timeouts.keepAliveMs),
      IX_API_MAX_CONNECTIONS: String(cap),
      IX_LOG_LEVEL: "warn",
    });
    const held: Held[] = [];
    try {
      const url = String((await api.waitForLine("listening", (line) => line.fault === "listening")).url);
      const fdsBefore = descriptors(api.pid);
      let fdsPeak = fdsBefore ?? 0;
      const sampleFds = () => {
        fdsPeak = Math.max(fdsPeak, descriptors(api.pid) ?? 0);
      };

      // Phase 1: 200 hostile connections, all at once, loopback only.
      const plan: Array<[string, number, (h: Held) => void]> = [
        // A valid key and a body announced at 100,000 bytes, sent a byte every 500 ms.
        ["slow-body", 60, (h) => {
          h.socket.write(slowPostHead({ authorization: `Bearer ${KEY_A}` }));
          trickle(h, "x".repeat(100_000), 500);
        }],
        // The same without a key: 401 before the body, and closed.
        ["slow-body-no-key", 40, (h) => {
          h.socket.write(slowPostHead({}));
          trickle(h, "x".repeat(100_000), 500);
        }],
        // Headers sent a character every 250 ms, never finished.
        ["slow-header", 50, (h) => trickle(h, `GET /healthz HTTP/1.1\r\nhost: ix.test\r\n${"x-pad: a\r\n".repeat(500)}`, 250)],
        // Connected, then nothing.
        ["idle", 50, () => undefined],
      ];
      for (const [kind, count, behave] of plan) {
        for (let i = 0; i < count; i++) {
          const h = await hold(url, kind);
          behave(h);
          held.push(h);
        }
      }

      // A normal client throughout: /healthz and a submission, in turn, until every hostile connection is gone.
      const client = createHttpClient(url);
      const normal = { requests: 0, failures: 0, slowestMs: 0, submitted: 0 };
      let stop = false;
      const normalLoop = (async () => {
        for (let i = 0; !stop; i++) {
          const startedAt = performance.now();
          const response = await (i % 2 === 0
            ? client.send({ method: "GET", path: "/healthz", headers: {} })
            : client.send({ method: "POST", path: "/jobs", headers: json, body: JSON.stringify(validBody({ request_id: `normal-${i}` })) })
          ).catch(() => ({ status: 0 }));
          normal.requests++;
          normal.slowestMs = Math.max(normal.slowestMs, Math.round(performance.now() - startedAt));
          if (response.status !== (i % 2 === 0 ? 200 : 201)) normal.failures++;
          else if (i % 2 === 1) normal.submitted++;
          sampleFds();
          await pace(50);
        }
      })();
      try {
        await waitFor("every hostile connection to be closed by the API", () => held.every((h) => h.closedAfterMs !== undefined), {
          timeoutMs: 20_000,
        });
      } finally {
        stop = true;
        await normalLoop;
        client.close();
      }
      const fdsAfterPhase1 = descriptors(api.pid);

      const byKind = new Map<string, Held[]>();
      for (const h of held) byKind.set(h.kind, [...(byKind.get(h.kind) ?? []), h]);
      const figures: Record<string, number | string> = {};
      for (const [kind, list] of byKind) {
        const times = list.map((h) => h.closedAfterMs ?? -1).sort((a, b) => a - b);
        const statuses = new Map<string, number>();
        for (const h of list) statuses.set(statusOf(h), (statuses.get(statusOf(h)) ?? 0) + 1);
        figures[`${kind}_n`] = list.length;
        figures[`${kind}_closed`] = list.filter((h) => h.closedAfterMs !== undefined).length;
        figures[`${kind}_median_ms`] = times[Math.floor(times.length / 2)] ?? -1;
        figures[`${kind}_max_ms`] = times.at(-1) ?? -1;
        figures[`${kind}_answers`] = [...statuses].map(([status, n]) => `${status}x${n}`).join("+");
      }
      printFigures("slow-clients", {
        headers_timeout_ms: timeouts.headersMs,
        request_timeout_ms: timeouts.requestMs,
        ...figures,
        normal_requests: normal.requests,
        normal_failures: normal.failures,
        normal_slowest_ms: normal.slowestMs,
        api_fds_before: fdsBefore ?? "n/a",
        api_fds_peak: fdsPeak,
        api_fds_after: fdsAfterPhase1 ?? "n/a",
      });

      // Each kind was ended by the API, with the answer its deadline or rule gives.
      const answers = (kind: string) => new Set((byKind.get(kind) ?? []).map(statusOf));
      expect(answers("slow-body")).toEqual(new Set(["408"]));
      expect(answers("slow-body-no-key")).toEqual(new Set(["401"]));
      expect(answers("slow-header")).toEqual(new Set(["408"]));
      expect(answers("idle")).toEqual(new Set(["408"]));
      // The API kept serving /healthz and submissions the whole time.
      expect(normal.requests).toBeGreaterThan(4);
      expect(normal.failures).toBe(0);
      const stored = await db.execute<{ n: number }>(sql`select count(*)::int as n from ix_jobs where request_id like 'normal-%'`);
      expect(stored.rows[0]?.n).toBe(normal.submitted);

      // Phase 2: 2 × the cap of idle connections at once. The API holds at most `cap` of them; the rest
      // are closed as soon as they are accepted (nothing sent back), so descriptors stay bounded.
      held.length = 0;
      const flood = await Promise.all(Array.from({ length: 2 * cap }, () => hold(url, "flood")));
      held.push(...flood);
      sampleFds();
      await waitFor("every flood connection to be closed", () => {
        sampleFds();
        return flood.every((h) => h.closedAfterMs !== undefined);
      }, { timeoutMs: 20_000 });
      const dropped = flood.filter((h) => h.received === "").length;
      const timedOut = flood.filter((h) => statusOf(h) === "408").length;
      await waitFor("the API to serve /healthz again", async () => (await fetch(`${url}/healthz`)).status === 200, { timeoutMs: 10_000 });
      printFigures("connection-flood", {
        max_connections: cap,
        opened: flood.length,
        dropped_at_accept: dropped,
        held_then_408: timedOut,
        api_fds_before: fdsBefore ?? "n/a",
        api_fds_peak: fdsPeak,
        api_fds_after: descriptors(api.pid) ?? "n/a",
      });
      expect(dropped + timedOut).toBe(flood.length);
      expect(timedOut).toBeLessThanOrEqual(cap);
      expect(dropped).toBeGreaterThanOrEqual(cap);
      // Descriptors: the held connections plus what the process had, never one per connection attempted.
      if (fdsBefore !== null) expect(fdsPeak).toBeLessThan(fdsBefore + cap + 50);
    } finally {
      for (const h of held) h.socket.destroy();
      killAll([api]);
      await api.exited;
    }
  });
});
