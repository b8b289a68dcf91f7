// Child-process entry for main.test.ts: `ix api` as production runs it, configured only by its environment.
import { runApiMain } from "../src/index.ts";

await runApiMain();
