import { describe, expect, it } from "vitest";
import { PipelineRegistry, extractFields, runPipeline } from "../src/index.ts";
import { MATCH_BUDGET_MS, MAX_MATCHES_PER_FIELD, MAX_MATCHES_PER_JOB } from "../src/pipelines/extract-fields.ts";
import { pino } from "pino";
import { runningJob } from "./fixtures/index.ts";

const log = pino({ level: "silent" });
const registry = new PipelineRegistry([extractFields]);

const run = (texts: string[], options: Record<string, unknown>) =>
  runPipeline({ job: runningJob({ context: { texts }, options }), registry, timeoutMs: 5_000, log });

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
    expect(response.error).toMatch(/field "evil": matching ran out of the job's 2000 ms budget on text 0 \(catastrophic backtracking\?\)/);
  });

  it("the matching budget is shared by the whole job: many pairs each under it cannot add up past it", async () => {
    // Each (field, text) pair backtracks for a fraction of the budget; 10 fields × 2 texts would take several budgets.
    const text = `${"a".repeat(24)}b`;
    const fields = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, "(a+)+$"]));
    const response = await run([text, text], { fields });
    expect(response.result).toBeNull();
    expect(response.error).toMatch(new RegExp(`^pipeline "extract_fields" failed: field "f\\d": matching ran out of the job's ${MATCH_BUDGET_MS} ms budget on text [01] `));
  });

  it("many cheap pairs fit in one budget: 250 fields × 2,500 texts", async () => {
    const fields = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`f${i}`, "b"]));
    const response = await run(Array.from({ length: 2_500 }, () => "a"), { fields });
    expect(response.error).toBeNull();
    expect(Object.values((response.result as { fields: Record<string, unknown[]> }).fields).every((m) => m.length === 0)).toBe(true);
  });

  it("more matches than the bound per field is an error naming the field and the bound", async () => {
    const response = await run(["x".repeat(MAX_MATCHES_PER_FIELD)], { fields: { fits: "x" } });
    expect(response.error).toBeNull();
    const over = await run(["x".repeat(MAX_MATCHES_PER_FIELD + 1)], { fields: { f0: "y", f1: "." } });
    expect(over.result).toBeNull();
    expect(over.error).toBe(
      `pipeline "extract_fields" failed: field "f1": more than ${MAX_MATCHES_PER_FIELD} matches, the bound per field; make the pattern more specific`,
    );
  });

  it("more matches than the bound per job, over all fields, is an error naming that bound", async () => {
    const fieldsNeeded = MAX_MATCHES_PER_JOB / MAX_MATCHES_PER_FIELD + 1;
    const fields = Object.fromEntries(Array.from({ length: fieldsNeeded }, (_, i) => [`f${i}`, "x"]));
    const response = await run(["x".repeat(MAX_MATCHES_PER_FIELD)], { fields });
    expect(response.result).toBeNull();
    expect(response.error).toBe(
      `pipeline "extract_fields" failed: field "f${fieldsNeeded - 1}": the job passed ${MAX_MATCHES_PER_JOB} matches over all fields, the bound per job; make the patterns more specific or split the job`,
    );
  });

  it("offsets stay right across texts with and without astral characters", async () => {
    const response = await run(["ab 1", "😀 2 😀 3", "4"], { fields: { n: "\\d" } });
    expect((response.result as { fields: { n: unknown[] } }).fields.n).toEqual([
      { value: "1", text_index: 0, start: 3, end: 4 },
      { value: "2", text_index: 1, start: 2, end: 3 },
      { value: "3", text_index: 1, start: 6, end: 7 },
      { value: "4", text_index: 2, start: 0, end: 1 },
    ]);
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
