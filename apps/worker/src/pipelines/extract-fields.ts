import { createContext, Script } from "node:vm";
import { z } from "zod";
import { definePipeline } from "../pipeline";

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
 * Matching budget for one pattern over one text. Patterns come from clients,
 * and a catastrophically backtracking one would block the event loop, where
 * no AbortSignal or timer can stop it; V8 can interrupt a script run in a vm
 * context with a timeout, regular expressions included.
 */
export const MATCH_BUDGET_MS = 2_000;

// Runs in the vm context: returns [index, value, index, value, …] of the non-empty matches.
const matchScript = new Script(`(() => {
  const out = [];
  for (const m of text.matchAll(new RegExp(source, "gu"))) if (m[0].length > 0) out.push(m.index, m[0]);
  return out;
})()`);

type Sandbox = { text: string; source: string };

function matchesIn(sandbox: Sandbox, text: string, source: string): Array<number | string> {
  sandbox.text = text;
  sandbox.source = source;
  return matchScript.runInContext(sandbox, { timeout: MATCH_BUDGET_MS }) as Array<number | string>;
}

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

/**
 * The reference pipeline: every non-empty match of each field's
 * pattern over `context.texts`. Zero-length matches (e.g. `\d*` between
 * digits) are skipped: they carry no value and would report every position.
 * A pattern that runs past MATCH_BUDGET_MS on one text is an error naming the field.
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
    const texts = request.context.texts ?? [];
    const fields: Record<string, FieldMatch[]> = {};
    // One context per run: creating one costs far more than a match.
    const sandbox = createContext({ text: "", source: "" }) as Sandbox;
    for (const [field, source] of patterns) {
      const matches: FieldMatch[] = [];
      texts.forEach((text, textIndex) => {
        signal.throwIfAborted();
        let found: Array<number | string>;
        try {
          found = matchesIn(sandbox, text, source);
        } catch (error) {
          // Checked by code, not instanceof: the error may come from another realm.
          if (typeof error === "object" && error !== null && "code" in error && error.code === "ERR_SCRIPT_EXECUTION_TIMEOUT") {
            throw new Error(
              `field "${field}": pattern ran longer than ${MATCH_BUDGET_MS} ms on text ${textIndex} (catastrophic backtracking?); simplify it`,
              { cause: error },
            );
          }
          throw error;
        }
        // Offsets advance incrementally, so converting to code points stays linear in the text.
        let unitCursor = 0;
        let pointCursor = 0;
        for (let i = 0; i < found.length; i += 2) {
          const index = found[i] as number;
          const value = found[i + 1] as string;
          pointCursor += codePoints(text, unitCursor, index);
          unitCursor = index;
          const length = codePoints(value, 0, value.length);
          matches.push({ value, text_index: textIndex, start: pointCursor, end: pointCursor + length });
        }
      });
      fields[field] = matches;
    }
    return { fields };
  },
});
