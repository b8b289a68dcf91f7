import { access, writeFile } from "node:fs/promises";
import { definePipeline } from "@ix/worker";
import { z } from "zod";

/**
 * `flaky`: fails its first run and succeeds afterwards, so a job can be seen failing, retried by an
 * operator, and ending done. The first run leaves `options.marker` (a file) behind; runs that find it
 * succeed. A file, not memory: runs of one job may land on different pipeline threads.
 */
export const flaky = definePipeline({
  name: "flaky",
  input: z.strictObject({ marker: z.string().min(1) }),
  async run(request) {
    const seen = await access(request.options.marker).then(
      () => true,
      () => false,
    );
    if (!seen) {
      await writeFile(request.options.marker, "failed once\n");
      throw new Error("the upstream OCR service refused the document (this first run fails on purpose)");
    }
    return { pages: 1, text: request.context.texts?.[0] ?? "" };
  },
});

export default [flaky];
