import { Problem } from "@ix/contracts";
import { test } from "@ix/testing";
import fc from "fast-check";
import { describe, expect } from "vitest";
import type { ApiApp } from "../src";
import { appFor, body, jobCount } from "./fixtures";

/**
 * Fuzzed bodies: whatever arrives, the answer is a 4xx problem+json
 * and the table is unchanged. Every generator below is invalid by
 * construction, so any 2xx or 5xx is a finding.
 */

const BODY_LIMIT = 8_192;

/** Values no string field accepts. */
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue(), { maxKeys: 3 }),
);

function badStringFor(field: "use_case" | "ix_client_id" | "request_id"): fc.Arbitrary<string> {
  const maxLength = field === "request_id" ? 128 : 64;
  const tooLong = fc.string({ minLength: maxLength + 1, maxLength: maxLength + 200 }).map((s) => `a${s}`.padEnd(maxLength + 1, "x"));
  const controls = fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom("\u0000", "\u0007", "\n", "\u007f", "\u009b"), fc.string({ maxLength: 10 }))
    .map(([a, c, b]) => `${a}${c}${b}`);
  if (field === "request_id") return fc.oneof(fc.constant(""), tooLong, controls);
  return fc.oneof(fc.constant(""), tooLong, controls, fc.tuple(fc.constantFrom("-", "_", ".", "É", " "), fc.string({ maxLength: 10 })).map(([a, b]) => a + b));
}

type Mutation = (valid: Record<string, unknown>) => Record<string, unknown>;

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // A required field gone.
  fc.constantFrom("use_case", "ix_client_id", "request_id", "context").map((key): Mutation => (valid) => {
    const { [key]: _, ...rest } = valid;
    return rest;
  }),
  // A field of the wrong type.
  fc.tuple(fc.constantFrom("use_case", "ix_client_id", "request_id", "context", "callback_url"), notAString)
    // callback_url may be null.
    .filter(([key, value]) => !(key === "callback_url" && value === null))
    .map(([key, value]): Mutation => (valid) => {
      // A random object could happen to be a valid context; an unknown key keeps it invalid.
      const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
      return { ...valid, [key]: key === "context" && isObject ? { ...value, extra_key: 1 } : value };
    }),
  // A string that breaks its field's rules.
  fc.constantFrom("use_case" as const, "ix_client_id" as const, "request_id" as const).chain((key) =>
    badStringFor(key).map((value): Mutation => (valid) => ({ ...valid, [key]: value })),
  ),
  // An unknown key, at the top or inside context or a file.
  fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom("top", "context", "file"))
    .filter(([key]) => !["use_case", "ix_client_id", "request_id", "ix_id", "context", "options", "callback_url", "texts", "files", "url", "mime_type", "__proto__", "constructor"].includes(key))
    .map(([key, value, where]): Mutation => (valid) => {
      if (where === "top") return { ...valid, [key]: value };
      if (where === "context") return { ...valid, context: { texts: ["t"], [key]: value } };
      return { ...valid, context: { files: [{ url: "https://example.com/a.pdf", [key]: value }] } };
    }),
  // A context with nothing in it, or texts that are not strings.
  fc.constantFrom<Mutation>(
    (valid) => ({ ...valid, context: {} }),
    (valid) => ({ ...valid, context: { texts: [], files: [] } }),
    (valid) => ({ ...valid, context: { texts: [1, null] } }),
    (valid) => ({ ...valid, context: { files: [{ url: "ftp://example.com/x" }] } }),
    (valid) => ({ ...valid, context: { files: [{ url: "https://example.com/x", mime_type: "" }] } }),
    (valid) => ({ ...valid, options: [] }),
    (valid) => ({ ...valid, options: "fields" }),
    (valid) => ({ ...valid, ix_id: "XYZ" }),
  ),
  // Text JSONB cannot store, hidden in an otherwise valid body.
  fc.tuple(fc.string({ maxLength: 20 }), fc.constantFrom("\u0000", "\ud800", "\udc00"), fc.constantFrom("text", "option-key", "option-value"))
    .map(([prefix, bad, where]): Mutation => (valid) => {
      const text = `${prefix}${bad}`;
      if (where === "text") return { ...valid, context: { texts: ["ok", text] } };
      if (where === "option-key") return { ...valid, options: { [text]: 1 } };
      return { ...valid, options: { nested: [{ value: text }] } };
    }),
  // A callback_url whose host is a non-public IP literal, in any spelling the URL parser normalises.
  fc
    .constantFrom("127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "[::ffff:10.0.0.1]", "[fd00::1]", "0.0.0.0", "100.64.0.1")
    .map((host): Mutation => (valid) => ({ ...valid, callback_url: `http://${host}:8080/hook` })),
  // A callback_url that is not http(s) or too long.
  fc.oneof(
    fc.constantFrom("ftp://x.example/", "javascript:alert(1)", "file:///etc/passwd", "//no-scheme", "http//x", ""),
    fc.string({ minLength: 2_030, maxLength: 2_100 }).map((s) => `https://h.example/${encodeURIComponent(s).slice(0, 2_100)}`.padEnd(2_049, "a")),
  ).map((url): Mutation => (valid) => ({ ...valid, callback_url: url })),
);

/** Raw request payloads: valid-looking JSON made invalid, JSON of the wrong shape, not JSON at all, or too big. */
const malformedRequest = fc.oneof(
  { weight: 5, arbitrary: mutation.map((mutate) => ({ contentType: "application/json", payload: JSON.stringify(mutate(body())) })) },
  {
    weight: 2,
    // Any JSON value at all: arrays, numbers, strings, objects with random keys.
    arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => ({ contentType: "application/json", payload: JSON.stringify(value) ?? "null" })),
  },
  {
    weight: 2,
    arbitrary: fc.string({ maxLength: 200, unit: "grapheme" })
      .filter((text) => {
        try {
          JSON.parse(text);
          return false;
        } catch {
          return true;
        }
      })
      .map((text) => ({ contentType: "application/json", payload: text })),
  },
  {
    weight: 1,
    // A valid body under a content type that is not JSON.
    arbitrary: fc.constantFrom("text/plain", "text/html", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream", "application/json-seq", "image/png")
      .map((contentType) => ({ contentType, payload: JSON.stringify(body()) })),
  },
  {
    weight: 1,
    // Options nested past the 64-level limit, up to thousands deep; written as text, since building
    // such a value and stringifying it would overflow this test's own stack.
    // Kept within the body limit: ~2 bytes a level as arrays, ~6 as objects.
    arbitrary: fc.oneof(fc.tuple(fc.integer({ min: 63, max: 3_900 }), fc.constant(true)), fc.tuple(fc.integer({ min: 63, max: 1_300 }), fc.constant(false))).map(([levels, arrays]) => {
      const valid = JSON.stringify(body());
      const [open, close] = arrays ? ["[", "]"] : ['{"k":', "}"];
      const deep = `${open.repeat(levels)}"leaf"${close.repeat(levels)}`;
      return { contentType: "application/json", payload: `${valid.slice(0, -1)},"options":{"deep":${deep}}}` };
    }),
  },
  {
    weight: 1,
    // Huge strings, past the body limit.
    arbitrary: fc.integer({ min: BODY_LIMIT, max: BODY_LIMIT * 4 }).map((size) => ({
      contentType: "application/json",
      payload: JSON.stringify(body({ context: { texts: ["é".repeat(size / 2)] } })),
    })),
  },
);

async function expectProblemAnswer(app: ApiApp, request: { contentType: string; payload: string }): Promise<number> {
  const response = await app.inject({
    method: "POST",
    url: "/jobs",
    headers: { "content-type": request.contentType },
    payload: request.payload,
  });
  expect(response.statusCode, `${response.statusCode} for ${request.payload.slice(0, 200)}: ${response.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(response.statusCode).toBeLessThan(500);
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const problem = Problem.parse(response.json());
  expect(problem.status).toBe(response.statusCode);
  return response.statusCode;
}

describe("fuzzed request bodies", () => {
  test("1,200 malformed POST /jobs bodies: every answer is a 4xx problem, nothing is stored", async ({ database: { db } }) => {
    const app = await appFor(db, { bodyLimitBytes: BODY_LIMIT });
    const statuses = new Map<number, number>();
    try {
      await fc.assert(
        fc.asyncProperty(malformedRequest, async (request) => {
          const status = await expectProblemAnswer(app, request);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }),
        { numRuns: 1_200 },
      );
      // The generators reach every kind of refusal, not just one.
      expect([...statuses.keys()].sort()).toEqual([400, 413, 415]);
      expect(await jobCount(db)).toBe(0);
    } finally {
      await app.close();
    }
  });

  test("300 fuzzed GET /jobs query strings never cause a 5xx; refusals are problems", async ({ database: { db } }) => {
    const app = await appFor(db);
    try {
      const value = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("0", "-1", "1e3", "200", "201", "pending", "DONE", "\u0000", "\ud800"));
      const query = fc.dictionary(fc.constantFrom("client_id", "request_id", "status", "limit", "cursor", "junk"), value, { maxKeys: 4 });
      await fc.assert(
        fc.asyncProperty(query, async (params) => {
          const search = new URLSearchParams(params).toString();
          const response = await app.inject({ method: "GET", url: `/jobs?${search}` });
          expect([200, 400, 404], `${response.statusCode} for ?${search}: ${response.body.slice(0, 300)}`).toContain(response.statusCode);
          if (response.statusCode !== 200) {
            expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
            Problem.parse(response.json());
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      await app.close();
    }
  });
});
