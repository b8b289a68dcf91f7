import { ConfigError } from "@ix/contracts";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ApiError } from "./api-client";
import { get } from "./commands/get";
import { migrate } from "./commands/migrate";
import { prune } from "./commands/prune";
import { submit } from "./commands/submit";
import { parseCliEnv } from "./env";
import { UsageError } from "./usage-error";

/**
 * The `ix` command (spec §7). Exit codes: 0 success, 1 failure, 2 usage error
 * (bad arguments or a bad IX_ variable); messages name the problem.
 */

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

// process.env is read here and handed down: each command parses what it needs once.
const env = process.env;
const cliEnv = () => parseCliEnv(env);

const program = new Command("ix")
  .description("ix: extraction jobs over REST, run by workers, stored in PostgreSQL, answered by signed callbacks")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

program
  .command("start")
  .description("run everything locally: embedded PostgreSQL (unless IX_POSTGRES_URL), migrations, API and a worker")
  // Loaded on demand: the other commands should not pay for the API, the worker and PostgreSQL tooling.
  .action(async () => (await import("./commands/start")).start(cliEnv(), env));

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
    await worker.runWorkerMain({ env: worker.parseWorkerEnv(env) });
  });

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a whole number ≥ 0");
  return n;
}

function rowCounts(value: string): number[] {
  if (value.trim() === "") return [];
  const counts = value.split(",").map((part) => Number(part.trim().replace(/_/g, "")));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError("must be comma-separated whole numbers, e.g. 0,100000,1000000");
  }
  return counts;
}

program
  .command("bench")
  .description("benchmark ix against graphile-worker and pg-boss on one PostgreSQL server (spec §8; see BENCHMARKS.md)")
  .option("--n <jobs>", "jobs per enqueue and process run", positiveInt, 20_000)
  .option("--c <concurrency>", "enqueue loops, worker concurrency, HTTP connections, pgbench clients", positiveInt, 8)
  .option("--l <jobs>", "sequential jobs in the latency run", positiveInt, 200)
  .option("--http-seconds <s>", "seconds per HTTP route and for pgbench; 0 skips them", wholeNumber, 10)
  .option("--scale-rows <list>", "terminal rows for the claim-latency runs; empty skips them", rowCounts, [0, 100_000, 1_000_000])
  .option("--systems <list>", "queues to run, comma-separated: ix, graphile-worker, pg-boss", (v: string) => v.split(",").map((s) => s.trim()))
  .option("--database-url <url>", "the PostgreSQL server (default IX_POSTGRES_URL; without either, an embedded one)")
  .option("--json-out <file>", "also write every result as one JSON document to this file")
  .action(
    async (options: { n: number; c: number; l: number; httpSeconds: number; scaleRows: number[]; systems?: string[]; databaseUrl?: string; jsonOut?: string }) => {
      const { runBench, SYSTEMS } = await import("@ix/bench");
      const systems = options.systems ?? [...SYSTEMS];
      const unknown = systems.filter((s) => !(SYSTEMS as readonly string[]).includes(s));
      if (unknown.length > 0) throw new UsageError(`--systems: unknown ${unknown.join(", ")} (known: ${SYSTEMS.join(", ")})`);
      const results = await runBench({
        databaseUrl: options.databaseUrl ?? cliEnv().IX_POSTGRES_URL,
        n: options.n,
        c: options.c,
        l: options.l,
        httpSeconds: options.httpSeconds,
        scaleRows: options.scaleRows,
        systems: systems as Array<(typeof SYSTEMS)[number]>,
      });
      if (options.jsonOut) {
        const { writeFile } = await import("node:fs/promises");
        await writeFile(options.jsonOut, `${JSON.stringify(results, null, 2)}\n`);
      }
    },
  );

program
  .command("migrate")
  .description("apply, revert or show database migrations (needs IX_POSTGRES_URL)")
  .addArgument(new Command().createArgument("<direction>", "up, down or status").choices(["up", "down", "status"]))
  .option("--steps <n>", "with down: how many migrations to revert", positiveInt, 1)
  .action(async (direction: string, options: { steps: number }) => migrate(cliEnv(), direction, options));

program
  .command("prune")
  .description("delete terminal jobs finished longer ago than a duration (needs IX_POSTGRES_URL)")
  .requiredOption("--older-than <duration>", "retention, e.g. 7d, 12h, 30m")
  .option("--batch-size <n>", "rows deleted per statement", positiveInt, 1000)
  .action(async (options: { olderThan: string; batchSize: number }) => prune(cliEnv(), options));

program
  .command("submit")
  .description("submit a RequestIX read from a file (or stdin) and print the job")
  .argument("[file]", "JSON file with the request; - or nothing reads stdin")
  .option("--callback-url <url>", "where ix POSTs the finished job")
  .action(async (file: string | undefined, options: { callbackUrl?: string }) => submit(cliEnv(), file, options));

program
  .command("get")
  .description("print a job; with --wait, follow it until it is done or error")
  .argument("<job_id>", "the job's id")
  .option("--wait", "follow the job to a terminal state (exit 1 if it ends error)", false)
  .addOption(new Option("--timeout <duration>", "with --wait: give up after this long").default("10m"))
  .addOption(new Option("--interval <duration>", "with --wait: how often to ask, e.g. 500ms, 2s").default("500ms"))
  .action(async (jobId: string, options: { wait: boolean; timeout: string; interval: string }) => get(cliEnv(), jobId, options));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version are successes; every other commander error is a usage error.
    process.exitCode = error.code === "commander.helpDisplayed" || error.code === "commander.help" || error.code === "commander.version" ? 0 : 2;
  } else if (error instanceof UsageError || error instanceof ConfigError) {
    console.error(`ix: ${error.message}`);
    process.exitCode = 2;
  } else if (error instanceof ApiError) {
    console.error(`ix: ${error.message}`);
    process.exitCode = 1;
  } else {
    console.error(`ix: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof Error && error.cause) console.error(`  cause: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`);
    process.exitCode = 1;
  }
}
