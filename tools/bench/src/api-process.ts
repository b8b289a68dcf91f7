// The API as its own process, configured by the environment like `ix api`,
// so load generator and server do not share one event loop.
import { runApiMain } from "@ix/api";

await runApiMain();
