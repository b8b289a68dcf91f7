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
 * The reference pipeline (spec §5): every non-empty match of each field's
 * pattern over `context.texts`. Zero-length matches (e.g. `\d*` between
 * digits) are skipped: they carry no value and would report every position.
 * Files are not read by this pipeline.
 */
export const extractFields = definePipeline({
  name: "extract_fields",
  input: ExtractFieldsOptions,
  run(request, { signal }) {
    const patterns = Object.entries(request.options.fields).map(([field, source]) => {
      try {
        return [field, new RegExp(source, "gu")] as const;
      } catch (error) {
        throw new Error(`field "${field}" has an invalid pattern: ${error instanceof Error ? error.message : String(error)}`, {
          cause: error,
        });
      }
    });
    const texts = request.context.texts ?? [];
    const fields: Record<string, FieldMatch[]> = {};
    for (const [field, pattern] of patterns) {
      const matches: FieldMatch[] = [];
      texts.forEach((text, textIndex) => {
        // Offsets advance incrementally, so converting to code points stays linear in the text.
        let unitCursor = 0;
        let pointCursor = 0;
        for (const match of text.matchAll(pattern)) {
          signal.throwIfAborted();
          if (match[0].length === 0) continue;
          pointCursor += codePoints(text, unitCursor, match.index);
          unitCursor = match.index;
          const length = codePoints(match[0], 0, match[0].length);
          matches.push({ value: match[0], text_index: textIndex, start: pointCursor, end: pointCursor + length });
        }
      });
      fields[field] = matches;
    }
    return { fields };
  },
});
