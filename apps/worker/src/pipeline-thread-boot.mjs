// The file piscina starts each pipeline thread with. ix runs from TypeScript
// sources through tsx, but on Node 20 a worker thread does not inherit the
// loader hooks that `--import tsx` registered in the main thread, so each
// thread registers tsx itself before importing the TypeScript entry (and,
// through it, IX_PIPELINE_MODULES written in TypeScript).
import { register } from "tsx/esm/api";

register();
const entry = await import(new URL("./pipeline-thread.ts", import.meta.url).href);

export default entry.default;
