import { definePipeline } from "@ix/worker";
import { z } from "zod";

export default definePipeline({
  name: "word_count",
  input: z.object({ min_length: z.number().int().min(1).default(1) }),
  async run(request, { signal, log }) {
    signal.throwIfAborted(); // long work checks its signal (or hands it to fetch) to stop at the timeout
    const words = (request.context.texts ?? []).join(" ").split(/\s+/);
    const count = words.filter((w) => w.length >= request.options.min_length).length;
    log.info({ count }, "counted");
    return { count };
  },
});
