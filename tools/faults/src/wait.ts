// Effects are waited for on a condition with a deadline, never slept on.
export { waitFor } from "@ix/testing/wait";

/** A fixed pace (e.g. "kill a worker every ~2 s"), not a wait for an effect. */
export function pace(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
