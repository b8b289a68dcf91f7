#!/usr/bin/env node
import { IxError, IxNetworkError, IxWaitTimeoutError } from "@ix/client";
import { ConfigError, JOB_STATUSES, Priority, RunAt, SubmittedMaxAttempts } from "@ix/contracts";
import { unreachableDatabase } from "@ix/store";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { z } from "zod";
import { enterCallerDirectory } from "./caller-directory.ts";
import { cancel, retry } from "./commands/control.ts";
import { get } from "./commands/get.ts";
import { type JobsOptions, listJobs } from "./commands/jobs.ts";
import { migrate } from "./commands/migrate.ts";
import { prune } from "./commands/prune.ts";
import { type SubmitOptions, submit } from "./commands/submit.ts";
import { parseCliEnv } from "./env.ts";
import { EXIT } from "./exit-codes.ts";
import type { WaitFlags } from "./follow.ts";
import { withRunningInstance } from "./instance.ts";
import { UsageError } from "./usage-error.ts";
import { cliVersion } from "./version.ts";

/**
 * The `ix` command. Exit codes (exit-codes.ts, the README's table): 0
 * success, 1 failure, 2 usage error (bad arguments or a bad IX_ variable),
 * 3 the job ended error or cancelled, 4 --wait timed out; messages name the problem.
 */

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

/** A flag's value checked by the contract the API applies to the field, so a bad one is a usage error before anything is sent. */
function contractValue<T>(schema: z.ZodType<T>, convert: (value: string) => unknown): (value: string) => T {
  return (value) => {
    const parsed = schema.safeParse(convert(value));
    if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues.map((issue) => issue.message).join("; "));
    return parsed.data;
  };
}

// process.env is read here and handed down: each command parses what it needs once.
const env = process.env;
const cliEnv = () => parseCliEnv(env);
enterCallerDirectory(env);
// Without the variable, commands reach the `ix start` running here through its record (instance.ts).
const apiClientEnv = () => parseCliEnv(withRunningInstance(env, "IX_API_URL"));
const databaseEnv = () => parseCliEnv(withRunningInstance(env, "IX_POSTGRES_URL"));

const program = new Command("ix")
  .description("ix: extraction jobs over REST, run by workers, stored in PostgreSQL, answered by signed callbacks")
  .version(cliVersion(), "-V, --version", "print the version of ix")
  .showHelpAfterError("(run with --help for usage)")
  .addHelpText(
    "after",
    "\nExit codes: 0 success (a job: done); 1 failure (the API refused, or could not be reached); 2 bad arguments\n" +
      "or IX_ variables; 3 the job ended error or cancelled; 4 --wait gave up (--timeout) before the job ended.",
  )
  .exitOverride();

/** --wait's companions on `ix get` and `ix submit`. */
function withWaitFlags(command: Command, what: string): Command {
  return command
    .option("--wait", `${what} (exit 3 if it ends error or cancelled, 4 if --timeout runs out first)`, false)
    .addOption(new Option("--timeout <duration>", "with --wait: give up after this long, e.g. 90s, 10m").default("10m"))
    .addOption(new Option("--interval <duration>", "with --wait: how often to ask, e.g. 500ms, 2s").default("500ms"));
}

program
  .command("start")
  .description("run everything locally: embedded PostgreSQL (unless IX_POSTGRES_URL), migrations, API and a worker")
  // Loaded on demand: the other commands should not pay for the API, the worker and PostgreSQL tooling.
  .action(async () => (await import("./commands/start.ts")).start(cliEnv(), env));

program
  .command("api")
  .description("run the REST API (production entry point; needs IX_POSTGRES_URL, does not migrate)")
  .action(async () => {
    const api = await import("@ix/api");
    await api.runApiMain({ env: api.parseApiEnv(env) });
  });

program
  .command("worker")
  .description("run a worker (production entry point; needs IX_POSTGRES_URL, does not migrate)")
  .action(async () => {
    const worker = await import("@ix/worker");
    await worker.runWorkerMain({ env: worker.parseWorkerEnv(env), tracesExporter: worker.parseTracesExporter(env) });
  });

program
  .command("bench")
  .description("benchmark ix against graphile-worker and pg-boss on one PostgreSQL server (see BENCHMARKS.md)")
  .argument("[options...]", "passed to the benchmark harness (tools/bench in the ix repository); --help lists them")
  // Every argument, --help included, belongs to the harness: it owns the flags and their checks.
  .helpOption(false)
  .allowUnknownOption()
  .addHelpText(
    "after",
    "\nRuns the repository's harness, exactly as `pnpm bench` does, and exits with its code (2 for bad options).\n" +
      "Outside the ix repository (an installed ix) there is no harness: ix bench exits 1 saying so.",
  )
  .action(async (args: string[], _options: unknown, command: Command) => {
    const { findBenchHarness, runBenchHarness } = await import("./commands/bench.ts");
    const entry = findBenchHarness();
    const help = args.includes("--help") || args.includes("-h");
    if (help) command.outputHelp();
    if (!entry) {
      if (help) return;
      throw new Error("the benchmark harness (tools/bench) is not here: ix bench runs inside a clone of the ix repository (pnpm bench)");
    }
    if (help) console.log("\nThe harness's options:\n");
    process.exitCode = await runBenchHarness(entry, args);
  });

program
  .command("migrate")
  .description("apply, revert or show database migrations (IX_POSTGRES_URL, else the embedded database of the ix start running here)")
  .addArgument(new Command().createArgument("<direction>", "up, down or status").choices(["up", "down", "status"]))
  .option("--steps <n>", "with down: how many migrations to revert", positiveInt, 1)
  .action(async (direction: string, options: { steps: number }) => migrate(databaseEnv(), direction, options));

program
  .command("prune")
  .description(
    "delete terminal jobs finished longer ago than a duration, and stale worker registrations " +
      "(IX_POSTGRES_URL, else the embedded database of the ix start running here)",
  )
  .requiredOption("--older-than <duration>", "retention, e.g. 7d, 12h, 30m")
  .option("--batch-size <n>", "rows deleted per statement", positiveInt, 1000)
  .addHelpText(
    "after",
    "\nTerminal jobs whose callback is still due are kept. Worker registrations (ix_workers) not seen within\n" +
      "IX_WORKER_REGISTRY_DAYS (default 7) are deleted too: they no longer count for the API, and a worker that\n" +
      "comes back registers again. Give ix prune the same IX_WORKER_REGISTRY_DAYS as ix api.",
  )
  .action(async (options: { olderThan: string; batchSize: number }) => prune(databaseEnv(), options));

withWaitFlags(program.command("submit"), "follow the job until it is done, error or cancelled, then print it")
  .description("submit a RequestIX read from a file (or stdin) and print the job; with --batch, many from a JSON Lines file")
  .argument("[file]", "JSON file with the request (with --batch: JSON Lines, one per line); - or nothing reads stdin")
  .option("--callback-url <url>", "where ix POSTs the finished job")
  .option("--priority <n>", "-100 to 100, higher runs first (default 0)", contractValue(Priority, Number))
  .option("--run-at <iso>", "do not start before this instant, e.g. 2030-01-01T08:00:00Z", contractValue(RunAt, String))
  .option("--max-attempts <n>", "runs allowed, 1 to 25 (default: the pipeline's policy, else the worker's)", contractValue(SubmittedMaxAttempts, Number))
  .option("--batch", "read JSON Lines: one submission per line, sent to POST /jobs/batch in chunks of up to 1,000", false)
  .addHelpText(
    "after",
    "\nThe flags set those fields of the request (of every line, with --batch), over the request's own.\n" +
      "Without --batch: prints the job; exit 0 when it was created (201) or already submitted (200), 1 for any\n" +
      "refusal (e.g. 409, or 422 naming the use_cases workers serve). With --wait: prints the job once it ended,\n" +
      "exit 0 done, 3 error or cancelled, 4 still running at --timeout (the last state seen is printed).\n" +
      "With --batch: blank lines are skipped; a line that is not JSON is a usage error (exit 2) naming it, before\n" +
      "anything is sent. Prints one JSON line per submission, {\"line\": n, \"status\": …, \"job\" or \"problem\": …}, in\n" +
      "order; exit 0 when every status is 201 or 200, 1 when any is not (400, 403, 409, 413, 422) or a request\n" +
      "failed (lines from there on were not sent; sending the file again is safe).",
  )
  .action(async (file: string | undefined, options: SubmitOptions & WaitFlags) => submit(apiClientEnv(), file, options));

withWaitFlags(program.command("get"), "follow the job until it is done, error or cancelled")
  .description("print a job; with --wait, follow it until it is done, error or cancelled")
  .argument("<job_id>", "the job's id")
  .addHelpText("after", "\nExit 0 (done, or not ended yet without --wait), 3 when the job ended error or cancelled, 4 when --wait timed out.")
  .action(async (jobId: string, options: WaitFlags & { wait: boolean }) => get(apiClientEnv(), jobId, options));

program
  .command("jobs")
  .description("list jobs, newest first")
  .option("--client <id>", "whose jobs (default: a client key's own; with an admin key or without keys, every client's)")
  .addOption(new Option("--status <status>", "only jobs in this status").choices(JOB_STATUSES))
  .option("--limit <n>", "print at most this many (pages of up to 200 are read until then)", positiveInt, 50)
  .addOption(new Option("--format <format>", "json: one job per line; table: a column each (default: table on a terminal, else json)").choices(["json", "table"]))
  .addHelpText("after", "\nA count goes to stderr, saying when there are more than --limit.")
  .action(async (options: JobsOptions) => listJobs(apiClientEnv(), options));

program
  .command("cancel")
  .description("cancel a job: a pending one at once, a running one is stopped by its worker; prints the job")
  .argument("<job_id>", "the job's id")
  .addHelpText(
    "after",
    "\nExit 0 when the job was cancelled (it was pending) or the cancel was requested (it is running: follow it\n" +
      "with ix get <job_id> --wait, which exits 3 once it is cancelled); exit 1 when it had already ended or is unknown.",
  )
  .action(async (jobId: string) => cancel(apiClientEnv(), jobId));

program
  .command("retry")
  .description("retry a job that ended error or cancelled: pending again, same job_id, one more run; prints the job")
  .argument("<job_id>", "the job's id")
  .addHelpText("after", "\nExit 0 when the job is pending again; exit 1 for any other status (the API's 409) or an unknown job.")
  .action(async (jobId: string) => retry(apiClientEnv(), jobId));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const unreachable = unreachableDatabase(error);
  if (error instanceof CommanderError) {
    // Help and version are successes; every other commander error is a usage error.
    const success = error.code === "commander.helpDisplayed" || error.code === "commander.help" || error.code === "commander.version";
    process.exitCode = success ? EXIT.ok : EXIT.usage;
  } else if (error instanceof UsageError || error instanceof ConfigError) {
    console.error(`ix: ${error.message}`);
    process.exitCode = EXIT.usage;
  } else if (error instanceof IxWaitTimeoutError) {
    console.error(`ix: ${error.message}; it may still end: ix get ${error.jobId} --wait`);
    process.exitCode = EXIT.waitTimeout;
  } else if (error instanceof IxNetworkError) {
    console.error(`ix: ${error.message} (is it running? IX_API_URL says where)`);
    process.exitCode = EXIT.failure;
  } else if (error instanceof IxError) {
    console.error(`ix: ${error.message}`);
    process.exitCode = EXIT.failure;
  } else if (unreachable) {
    // Not the statement that needed the connection: where the server was expected, and why it did not answer.
    // A refused "localhost" (both ::1 and 127.0.0.1) is an AggregateError without a message: its code says it.
    const reason = (unreachable.cause instanceof Error && unreachable.cause.message) || unreachable.code;
    console.error(`ix: ${unreachable.message}${reason ? ` (${reason})` : ""}`);
    process.exitCode = EXIT.failure;
  } else {
    console.error(`ix: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof Error && error.cause) console.error(`  cause: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`);
    process.exitCode = EXIT.failure;
  }
}
