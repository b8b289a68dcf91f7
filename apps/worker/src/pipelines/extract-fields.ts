import { createContext, Script } from "node:vm";
import { z } from "zod";
import { definePipeline } from "../pipeline.ts";

export const ExtractFieldsOptions = z.strictObject({
  /** Field name → regular expression source (JavaScript syntax, run with the `u` flag). */
  fields: z
    .record(z.string().min(1, "field names must not be empty"), z.string().min(1, "pattern must not be empty"))
    .refine((fields) => Object.keys(fields).length > 0, "must name at least one field"),
});
export type ExtractFieldsOptions = z.infer<typeof ExtractFieldsOptions>;

export interface FieldMatch {
  value: string;
  /** Index into `context.texts`. */
  text_index: number;
  /** Offsets in Unicode code points, so `text[start:end]` in Python or `[...text].slice(start, end)` gives `value`. */
  start: number;
  end: number;
}

/**
 * Matching budget of one job, shared by all its (field, text) pairs. Patterns
 * come from clients, and a catastrophically backtracking one would block its
 * thread, where no AbortSignal or timer can stop it; V8 can interrupt a script
 * run in a vm context with a timeout, regular expressions included. One budget
 * for the whole job, not one per pair: 250 fields × 2,500 texts must not be
 * allowed 625,000 × the budget.
 */
export const MATCH_BUDGET_MS = 2_000;
/** Matches one field may have: a pattern such as `.` over a large text would otherwise report every character. */
export const MAX_MATCHES_PER_FIELD = 10_000;
/** Matches one job may have over all its fields, which bounds the memory matching can take. */
export const MAX_MATCHES_PER_JOB = 100_000;

/** Which bound a job hit, as the vm script reports it. */
const OVER_FIELD = -1;
const OVER_JOB = -2;

// Runs in the vm context, all pairs in one call (a call with a timeout costs far
// more than a match). Returns, per field, [text, index, value, text, index, value, …]
// of its non-empty matches, or a bound marker as the last element. The
// sandbox's globals are read once into parameters: every global access in a vm
// context goes through an interceptor, which made the loop 20× slower.
// `progress` holds the (field, text) being matched, read when the budget runs out.
const matchScript = new Script(`((sources, texts, progress, maxPerField, maxPerJob) => {
  const out = [];
  let total = 0;
  for (let f = 0; f < sources.length; f++) {
    const re = new RegExp(sources[f], "gu");
    const found = [];
    out.push(found);
    for (let t = 0; t < texts.length; t++) {
      progress[0] = f;
      progress[1] = t;
      const text = texts[t];
      re.lastIndex = 0;
      let m;
      while ((m = re.exec(text)) !== null) {
        const value = m[0];
        if (value.length === 0) {
          // Step past an empty match by one code point, as matchAll would.
          const i = re.lastIndex;
          const unit = text.charCodeAt(i);
          const next = text.charCodeAt(i + 1);
          re.lastIndex = unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? i + 2 : i + 1;
          continue;
        }
        if (found.length === maxPerField * 3) { found.push(${OVER_FIELD}); return out; }
        if (total === maxPerJob) { found.push(${OVER_JOB}); return out; }
        found.push(t, m.index, value);
        total++;
      }
    }
  }
  return out;
})(sources, texts, progress, maxPerField, maxPerJob)`);

type Sandbox = { sources: string[]; texts: string[]; progress: Int32Array; maxPerField: number; maxPerJob: number };

function codePoints(text: string, from: number, to: number): number {
  let count = 0;
  for (let i = from; i < to; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < to) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * The reference pipeline: every non-empty match of each field's
 * pattern over `context.texts`. Zero-length matches (e.g. `\d*` between
 * digits) are skipped: they carry no value and would report every position.
 * A job is bounded by MATCH_BUDGET_MS of matching in all, MAX_MATCHES_PER_FIELD
 * and MAX_MATCHES_PER_JOB; passing one is an error naming the bound and the field.
 * Files are not read by this pipeline.
 */
export const extractFields = definePipeline({
  name: "extract_fields",
  input: ExtractFieldsOptions,
  run(request, { signal }) {
    const patterns = Object.entries(request.options.fields);
    for (const [field, source] of patterns) {
      try {
        new RegExp(source, "gu");
      } catch (error) {
        throw new Error(`field "${field}" has an invalid pattern: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      }
    }
    signal.throwIfAborted();
    const texts = request.context.texts ?? [];
    const sandbox: Sandbox = {
      sources: patterns.map(([, source]) => source),
      texts,
      progress: new Int32Array(2),
      maxPerField: MAX_MATCHES_PER_FIELD,
      maxPerJob: MAX_MATCHES_PER_JOB,
    };
    let found: Array<Array<number | string>>;
    try {
      found = matchScript.runInContext(createContext(sandbox), { timeout: MATCH_BUDGET_MS }) as Array<Array<number | string>>;
    } catch (error) {
      // Checked by code, not instanceof: the error may come from another realm.
      if (typeof error === "object" && error !== null && "code" in error && error.code === "ERR_SCRIPT_EXECUTION_TIMEOUT") {
        const [fieldIndex = 0, textIndex = 0] = sandbox.progress;
        throw new Error(
          `field "${patterns[fieldIndex]?.[0]}": matching ran out of the job's ${MATCH_BUDGET_MS} ms budget on text ${textIndex} (catastrophic backtracking?); simplify the pattern or split the job`,
          { cause: error },
        );
      }
      throw error;
    }

    const fields: Record<string, FieldMatch[]> = {};
    // Texts without surrogate pairs have code point offsets equal to their UTF-16 offsets.
    const astral = texts.map((text) => SURROGATE.test(text));
    found.forEach((flat, fieldIndex) => {
      const field = patterns[fieldIndex]?.[0] as string;
      const bound = flat.length % 3 === 1 ? flat.at(-1) : undefined;
      if (bound === OVER_FIELD) {
        throw new Error(`field "${field}": more than ${MAX_MATCHES_PER_FIELD} matches, the bound per field; make the pattern more specific`);
      }
      if (bound === OVER_JOB) {
        throw new Error(
          `field "${field}": the job passed ${MAX_MATCHES_PER_JOB} matches over all fields, the bound per job; make the patterns more specific or split the job`,
        );
      }
      const matches: FieldMatch[] = [];
      // Offsets advance incrementally within a text, so converting to code points stays linear in it.
      let text = -1;
      let unitCursor = 0;
      let pointCursor = 0;
      for (let i = 0; i < flat.length; i += 3) {
        const textIndex = flat[i] as number;
        const index = flat[i + 1] as number;
        const value = flat[i + 2] as string;
        const source = texts[textIndex] as string;
        if (!astral[textIndex]) {
          matches.push({ value, text_index: textIndex, start: index, end: index + value.length });
          continue;
        }
        if (textIndex !== text) {
          text = textIndex;
          unitCursor = 0;
          pointCursor = 0;
        }
        pointCursor += codePoints(source, unitCursor, index);
        unitCursor = index;
        matches.push({ value, text_index: textIndex, start: pointCursor, end: pointCursor + codePoints(value, 0, value.length) });
      }
      fields[field] = matches;
    });
    return { fields };
  },
});
