import { Problem } from "@ix/contracts";
import { apiConfig, startApi } from "@ix/api";
import { sql } from "@ix/store";
import { describe, expect, test } from "@ix/testing";
import fc from "fast-check";
import { printFigures } from "../src/figures";
import { createHttpClient, type RawRequest } from "../src/http-client";
import { waitFor } from "../src/wait";

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
  { weight: 2, arbitrary: wrongContentTypes },
  { weight: 1, arbitrary: oversize },
  { weight: 2, arbitrary: badAuth },
  { weight: 1, arbitrary: otherClient },
  { weight: 2, arbitrary: badReads },
  { weight: 1, arbitrary: valid },
);

describe("hostile clients against the API over a real socket", () => {
  test(`${RUNS.toLocaleString("en")} fuzzed requests: no 5xx, every refusal a problem, only the valid requests stored`, { timeout: 150_000 }, async ({
    database: { db, connect },
  }) => {
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
});
