// The file piscina starts each pipeline thread with when ix runs from its
// TypeScript sources (compiled, threads start with dist/pipeline-thread.js).
// On Node 20 a worker thread does not inherit the loader hooks that
// `--import tsx` registered in the main thread, so each thread registers tsx
// itself before importing the TypeScript entry (and, through it,
// IX_PIPELINE_MODULES written in TypeScript).
import { register } from "tsx/esm/api";

register();
const entry = await import(new URL("./pipeline-thread.ts", import.meta.url).href);

export default entry.default;
