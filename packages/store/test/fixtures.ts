// @ix/testing depends on @ix/store, so the store's own tests reach it by path:
// declaring it as a dependency here would make the two packages a cycle.
export { callbackState, createTestDatabase, insertJob, listenFor, test } from "../../testing/src/index.ts";
/** A valid request with a unique request_id unless one is given. */
export { sampleRequest as request } from "../../testing/src/sample-request.ts";
// @ix/provision depends on @ix/store too: the same reason, the same way.
export { freePort } from "../../provision/src/provision.ts";

/** The response a worker's run of a job would store; `error` null means success. */
export { runResponse as responseFor } from "../../testing/src/runs.ts";

export { sqlState } from "../src/errors.ts";

/** An instant far enough ahead that every running row is past any test horizon. */
export function later(seconds = 3600): Date {
  return new Date(Date.now() + seconds * 1000);
}
