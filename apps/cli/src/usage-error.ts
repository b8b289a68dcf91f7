/** A mistake in how the command was called: exit code 2 (spec §7 convention, like commander's own). */
export class UsageError extends Error {
  override name = "UsageError";
}
