import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Job, JOB_STATUSES, MAX_JOB_ERRORS, RequestIX, ResponseIX, SubmitJobBody, TERMINAL_JOB_STATUSES, fieldErrors, isTerminal } from "../src/index.ts";
import { requestIX, responseIX } from "./arbitraries.ts";

const valid = {
  use_case: "extract_fields",
  ix_client_id: "billing-svc",
  request_id: "inv-42",
  context: { texts: ["Invoice 42, total 10.00 EUR"] },
};

function pathsOf(result: { success: boolean; error?: unknown }): string[] {
  expect(result.success).toBe(false);
  return fieldErrors(result.error as never).map((e) => e.path);
}

describe("RequestIX", () => {
  it("accepts a minimal request and defaults options to {}", () => {
    expect(RequestIX.parse(valid)).toEqual({ ...valid, options: {} });
  });

  it("accepts files with http, https and data URLs", () => {
    const files = [
      { url: "https://example.com/a.pdf", mime_type: "application/pdf" },
      { url: "http://example.com/b" },
      { url: "data:text/plain;base64,aGk=" },
    ];
    expect(RequestIX.parse({ ...valid, context: { files } }).context.files).toEqual(files);
  });

  it.each([
    ["use_case", { use_case: "" }],
    ["use_case", { use_case: "Extract" }],
    ["use_case", { use_case: "a".repeat(65) }],
    ["ix_client_id", { ix_client_id: "-svc" }],
    ["request_id", { request_id: "" }],
    ["request_id", { request_id: "a\u0000b" }],
    ["request_id", { request_id: "x".repeat(129) }],
    ["ix_id", { ix_id: "ABCDEF0123456789" }],
    ["context", { context: {} }],
    ["context", { context: { texts: [], files: [] } }],
    ["context.files.0.url", { context: { files: [{ url: "ftp://example.com/x" }] } }],
    ["context.files.0.url", { context: { files: [{ url: "not a url" }] } }],
    ["context.texts.0", { context: { texts: [1] } }],
    ["options", { options: [] }],
    ["surprise", { surprise: true }],
    ["context.extra", { context: { texts: ["a"], extra: 1 } }],
  ])("rejects a bad %s and names it", (path, patch) => {
    expect(pathsOf(RequestIX.safeParse({ ...valid, ...patch }))).toContain(path);
  });

  it("reports every bad field at once", () => {
    const paths = pathsOf(RequestIX.safeParse({ use_case: "", ix_client_id: "", request_id: "", context: {} }));
    expect(paths).toEqual(expect.arrayContaining(["use_case", "ix_client_id", "request_id", "context"]));
  });
});

describe("SubmitJobBody", () => {
  it("accepts an http(s) callback_url and rejects other schemes and long URLs", () => {
    expect(SubmitJobBody.parse({ ...valid, callback_url: "https://hooks.example/ix" }).callback_url).toBe(
      "https://hooks.example/ix",
    );
    expect(pathsOf(SubmitJobBody.safeParse({ ...valid, callback_url: "file:///etc/passwd" }))).toContain(
      "callback_url",
    );
    const long = `https://example.com/${"a".repeat(2048)}`;
    expect(pathsOf(SubmitJobBody.safeParse({ ...valid, callback_url: long }))).toContain("callback_url");
  });

  it("accepts the scheduling fields within their bounds; run_at with Z or an offset", () => {
    const body = { ...valid, priority: -100, run_at: "2030-01-01T08:00:00+01:00", max_attempts: 25 };
    expect(SubmitJobBody.parse(body)).toMatchObject({ priority: -100, run_at: "2030-01-01T08:00:00+01:00", max_attempts: 25 });
    expect(SubmitJobBody.parse({ ...valid, priority: 100, run_at: "2030-01-01T07:00:00.123456Z", max_attempts: 1 })).toBeTruthy();
  });

  it.each([
    ["priority", { priority: 101 }],
    ["priority", { priority: -101 }],
    ["priority", { priority: 1.5 }],
    ["priority", { priority: "1" }],
    ["max_attempts", { max_attempts: 0 }],
    ["max_attempts", { max_attempts: 26 }],
    ["max_attempts", { max_attempts: 2.5 }],
    ["run_at", { run_at: "tomorrow" }],
    ["run_at", { run_at: "2030-02-30T00:00:00Z" }],
    ["run_at", { run_at: "2030-01-01T00:00:00" }],
    ["run_at", { run_at: "1969-12-31T23:59:59Z" }],
    ["run_at", { run_at: 1_900_000_000 }],
  ])("rejects a bad %s and names it", (path, patch) => {
    expect(pathsOf(SubmitJobBody.safeParse({ ...valid, ...patch }))).toContain(path);
  });
});

describe("statuses", () => {
  it("cancelled is a status, and terminal like done and error", () => {
    expect(JOB_STATUSES).toContain("cancelled");
    expect(TERMINAL_JOB_STATUSES).toEqual(["done", "error", "cancelled"]);
    expect(JOB_STATUSES.filter(isTerminal)).toEqual(["done", "error", "cancelled"]);
  });
});

describe("Job", () => {
  const job = {
    job_id: "7f9c1c8e-4a59-4c1b-9a57-3e0d2f6b8a10",
    ix_id: "0123456789abcdef",
    client_id: "billing-svc",
    request_id: "inv-42",
    status: "pending",
    request: { ...valid, ix_id: "0123456789abcdef", options: {} },
    response: null,
    callback_url: null,
    callback_status: null,
    attempts: 0,
    created_at: "2026-11-28T06:00:00.000Z",
    started_at: null,
    finished_at: null,
    priority: 0,
    run_at: "2026-11-28T06:00:00.000Z",
    max_attempts: null,
    errors: [],
    cancel_requested_at: null,
  };

  it("accepts a pending job", () => {
    expect(Job.parse(job)).toEqual(job);
  });

  it("accepts failed runs in errors, at most MAX_JOB_ERRORS of them", () => {
    const entry = (attempt: number) => ({ attempt, at: "2026-11-28T06:00:01.000Z", error: "HTTP 503" });
    const errors = Array.from({ length: MAX_JOB_ERRORS }, (_, i) => entry(i + 1));
    expect(Job.parse({ ...job, errors, attempts: 20, max_attempts: 21 }).errors).toEqual(errors);
    expect(pathsOf(Job.safeParse({ ...job, errors: [...errors, entry(21)] }))).toContain("errors");
    expect(pathsOf(Job.safeParse({ ...job, errors: [{ ...entry(1), attempt: 0 }] }))).toContain("errors.0.attempt");
  });

  it.each([
    ["status", { status: "queued" }],
    ["attempts", { attempts: -1 }],
    ["created_at", { created_at: "yesterday" }],
    ["callback_status", { callback_status: "pending" }],
    ["job_id", { job_id: "42" }],
    ["priority", { priority: 101 }],
    ["max_attempts", { max_attempts: 0 }],
    ["run_at", { run_at: null }],
    ["cancel_requested_at", { cancel_requested_at: "now" }],
  ])("rejects a bad %s", (path, patch) => {
    expect(pathsOf(Job.safeParse({ ...job, ...patch }))).toContain(path);
  });
});

describe("properties", () => {
  it("any valid RequestIX survives JSON serialize → parse unchanged", () => {
    fc.assert(
      fc.property(requestIX, (request) => {
        expect(RequestIX.parse(JSON.parse(JSON.stringify(request)))).toEqual(request);
      }),
      { numRuns: 300 },
    );
  });

  it("any valid ResponseIX survives JSON serialize → parse unchanged", () => {
    fc.assert(
      fc.property(responseIX, (response) => {
        expect(ResponseIX.parse(JSON.parse(JSON.stringify(response)))).toEqual(response);
      }),
      { numRuns: 300 },
    );
  });

  // Each mutation breaks exactly one rule; the error must name that field.
  type Mutation = [field: string, mutate: (r: Record<string, unknown>) => void];
  const set = (field: string, values: unknown[]): fc.Arbitrary<Mutation> =>
    fc.constantFrom(...values).map((v): Mutation => [field, (r) => {
      r[field] = v;
    }]);
  const mutation = fc.oneof(
    set("use_case", ["", "UPPER", "_lead", "a".repeat(65), "has space"]),
    set("ix_client_id", ["", ".lead", "b".repeat(65), "x/y"]),
    set("request_id", ["", "c".repeat(129), "tab\there", "nl\n"]),
    set("ix_id", ["123", "0123456789ABCDEF", 42]),
    set("context", [{}, { texts: [] }, "text"]),
    set("options", [[], "x", 1]),
    set("unexpected", [1, null]),
  );

  it("any single broken rule is rejected with an error naming the field", () => {
    fc.assert(
      fc.property(requestIX, mutation, (request, [field, mutate]) => {
        const copy = JSON.parse(JSON.stringify(request)) as Record<string, unknown>;
        mutate(copy);
        const result = RequestIX.safeParse(copy);
        expect(result.success).toBe(false);
        expect(fieldErrors(result.error!).map((e) => e.path)).toContain(field);
      }),
      { numRuns: 500 },
    );
  });
});
