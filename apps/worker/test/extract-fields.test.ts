import { describe, expect, it } from "vitest";
import { PipelineRegistry, extractFields, runPipeline } from "../src";
import { pino } from "pino";
import type { Job } from "@ix/contracts";
import { request } from "./fixtures";

const log = pino({ level: "silent" });
const registry = new PipelineRegistry([extractFields]);

function job(texts: string[], options: Record<string, unknown>): Job {
  const now = new Date().toISOString();
  const req = request({ context: { texts }, options });
  return {
    job_id: "00000000-0000-4000-8000-000000000001",
    ix_id: "0123456789abcdef",
    client_id: req.ix_client_id,
    request_id: req.request_id,
    status: "running",
    request: { ...req, ix_id: "0123456789abcdef" },
    response: null,
    callback_url: null,
    callback_status: null,
    attempts: 0,
    created_at: now,
    started_at: now,
    finished_at: null,
    priority: 0,
    run_at: now,
    max_attempts: null,
    errors: [],
    cancel_requested_at: null,
  };
}

const run = (texts: string[], options: Record<string, unknown>) =>
  runPipeline({ job: job(texts, options), registry, timeoutMs: 5_000, log });

describe("extract_fields", () => {
  it("reports every match of each field with its text index and offsets", async () => {
    const response = await run(["Invoice 42, total 10.00 EUR", "nothing here", "paid 3.50 and 7.25"], {
      fields: { total: "\\d+\\.\\d{2}", invoice: "Invoice \\d+" },
    });
    expect(response.error).toBeNull();
    expect(response.result).toEqual({
      fields: {
        total: [
          { value: "10.00", text_index: 0, start: 18, end: 23 },
          { value: "3.50", text_index: 2, start: 5, end: 9 },
          { value: "7.25", text_index: 2, start: 14, end: 18 },
        ],
        invoice: [{ value: "Invoice 42", text_index: 0, start: 0, end: 10 }],
      },
    });
  });

  it("counts offsets in code points, so astral characters do not shift them", async () => {
    const text = "😀😀 total 5 € — 🎉 id=7";
    const response = await run([text], { fields: { n: "\\d" } });
    const matches = (response.result as { fields: { n: Array<{ value: string; start: number; end: number }> } }).fields.n;
    expect(matches.map((m) => m.value)).toEqual(["5", "7"]);
    const points = [...text];
    for (const m of matches) expect(points.slice(m.start, m.end).join("")).toBe(m.value);
  });

  it("matches with Unicode semantics", async () => {
    const response = await run(["Ünïcødé ✓ straße"], { fields: { word: "\\p{L}+" } });
    const values = (response.result as { fields: { word: Array<{ value: string }> } }).fields.word.map((m) => m.value);
    expect(values).toEqual(["Ünïcødé", "straße"]);
  });

  it("skips zero-length matches instead of reporting every position", async () => {
    const response = await run(["a1b22c"], { fields: { digits: "\\d*", never: "(?:)" } });
    expect(response.error).toBeNull();
    expect(response.result).toEqual({
      fields: {
        digits: [
          { value: "1", text_index: 0, start: 1, end: 2 },
          { value: "22", text_index: 0, start: 3, end: 5 },
        ],
        never: [],
      },
    });
  });

  it("a field without matches maps to an empty list", async () => {
    const response = await run(["no numbers"], { fields: { total: "\\d+" } });
    expect(response.result).toEqual({ fields: { total: [] } });
  });

  it("a bad pattern is an error response that names the field", async () => {
    const response = await run(["x"], { fields: { ok: "x", broken: "(unclosed" } });
    expect(response.result).toBeNull();
    expect(response.error).toMatch(/field "broken" has an invalid pattern/);
  });

  it("a catastrophically backtracking pattern is stopped and named, instead of freezing the worker", async () => {
    const response = await run([`${"a".repeat(40)}!`], { fields: { ok: "a", evil: "^(a+)+$" } });
    expect(response.result).toBeNull();
    expect(response.error).toMatch(/field "evil": pattern ran longer than 2000 ms on text 0 \(catastrophic backtracking\?\)/);
  });

  it.each([
    [{}, /options\.fields: /],
    [{ fields: {} }, /options\.fields: must name at least one field/],
    [{ fields: { total: 42 } }, /options\.fields\.total: /],
    [{ fields: { total: "" } }, /options\.fields\.total: pattern must not be empty/],
    [{ fields: { total: "x" }, extra: true }, /extra/],
  ])("options %j are refused before running, naming the problem", async (options, message) => {
    const response = await run(["x"], options);
    expect(response.result).toBeNull();
    expect(response.error).toMatch(/^invalid options for pipeline "extract_fields": /);
    expect(response.error).toMatch(message);
  });
});
