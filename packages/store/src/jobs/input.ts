import { CallbackUrl, Priority, RequestIX, RunAt, SubmittedMaxAttempts } from "@ix/contracts";
import { describeIssues } from "./row.ts";

/**
 * Input a repo function refused before writing anything: it breaks the wire
 * contract. The message names the item and the fields, never their values.
 */
export class InvalidJobInputError extends Error {
  readonly code = "IX_INVALID_JOB_INPUT";
  constructor(message: string) {
    super(message);
    this.name = "InvalidJobInputError";
  }
}

// Built once: zod builds a schema object per `.nullable().optional()`, which costs more than the check itself.
const OptionalCallbackUrl = CallbackUrl.nullable().optional();
const OptionalPriority = Priority.nullable().optional();
const OptionalMaxAttempts = SubmittedMaxAttempts.nullable().optional();

/**
 * Checks submissions against the contracts, so a caller that bypassed the
 * API's validation (a cast, a script) cannot commit a row that every later
 * read, claim and delivery would have to step around. Throws for the first
 * bad item; nothing has been written then.
 */
export function assertValidSubmissions(
  items: ReadonlyArray<{ request: unknown; callbackUrl?: unknown; priority?: unknown; runAt?: unknown; maxAttempts?: unknown }>,
): void {
  items.forEach(({ request, callbackUrl, priority, runAt, maxAttempts }, index) => {
    const where = items.length === 1 ? "" : ` (item ${index})`;
    const parsed = RequestIX.safeParse(request);
    if (!parsed.success) throw new InvalidJobInputError(`invalid request${where}: ${describeIssues(parsed.error)}`);
    const url = OptionalCallbackUrl.safeParse(callbackUrl);
    if (!url.success) throw new InvalidJobInputError(`invalid callbackUrl${where}: ${describeIssues(url.error)}`);
    const order = OptionalPriority.safeParse(priority);
    if (!order.success) throw new InvalidJobInputError(`invalid priority${where}: ${describeIssues(order.error)}`);
    const runs = OptionalMaxAttempts.safeParse(maxAttempts);
    if (!runs.success) throw new InvalidJobInputError(`invalid maxAttempts${where}: ${describeIssues(runs.error)}`);
    if (runAt !== undefined && runAt !== null) {
      const instant = runAt instanceof Date ? (Number.isNaN(runAt.getTime()) ? "Invalid Date" : runAt.toISOString()) : runAt;
      const due = RunAt.safeParse(instant);
      if (!due.success) throw new InvalidJobInputError(`invalid runAt${where}: ${describeIssues(due.error)}`);
    }
  });
}
