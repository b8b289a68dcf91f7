// Pipelines for the neighbours fault (test/neighbours.test.ts), loaded by the
// worker process through IX_PIPELINE_MODULES, as an operator's module would be.
import { definePipeline } from "@ix/worker";
import { z } from "zod";

/** Runs waiting at each barrier of this process, by name. */
const barriers = new Map<string, { arrived: number; release: () => void; released: Promise<void> }>();

function barrier(name: string, size: number): Promise<void> {
  let entry = barriers.get(name);
  if (!entry) {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    entry = { arrived: 0, release, released };
    barriers.set(name, entry);
  }
  entry.arrived++;
  if (entry.arrived >= size) entry.release();
  return entry.released;
}

const Together = z.strictObject({
  /** Runs wait until this many runs of `group` have started, then all return in the same tick: one completion batch. */
  group: z.string(),
  size: z.number().int().min(1).max(64),
  /** Decode `\uXXXX` escapes in the text, as a document extractor might, NUL included. */
  decode: z.boolean().default(false),
});

/**
 * `together`: returns the request's first text (decoded when asked), once the
 * whole group has started, so the group's responses are stored by one statement.
 */
export const together = definePipeline({
  name: "together",
  input: Together,
  async run(request) {
    await barrier(request.options.group, request.options.size);
    const text = request.context.texts?.[0] ?? "";
    const decoded = request.options.decode
      ? text.replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
      : text;
    return { text: decoded, length: decoded.length };
  },
});

export default [together];
