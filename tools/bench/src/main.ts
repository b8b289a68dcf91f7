import { writeFile } from "node:fs/promises";
import { ConfigError, envVar, optionalEnv, parseEnv } from "@ix/contracts";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { z } from "zod";
import { BENCH_DEFAULTS, runBench, SYSTEMS, type SystemName } from "./run.ts";

/**
 * The harness's command line: `pnpm bench …` runs it, and so does `ix bench …`
 * inside the repository. Exit codes: 0 done, 1 the run failed, 2 bad options
 * or a bad IX_POSTGRES_URL.
 */

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

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

function clientCounts(value: string): number[] {
  if (value.trim() === "") return [];
  const counts = value.split(",").map((part) => Number(part.trim().replace(/_/g, "")));
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError("must be comma-separated positive integers, e.g. 1,1000");
  return counts;
}

function isolations(value: string): Array<"inline" | "thread"> {
  const names = value.split(",").map((s) => s.trim());
  const unknown = names.filter((s) => s !== "inline" && s !== "thread");
  if (unknown.length > 0 || names.length === 0) throw new InvalidArgumentError(`unknown ${unknown.join(", ")} (known: inline, thread)`);
  return names as Array<"inline" | "thread">;
}

function systemNames(value: string): SystemName[] {
  if (value.trim() === "") return [];
  const names = value.split(",").map((s) => s.trim());
  const unknown = names.filter((s) => !(SYSTEMS as readonly string[]).includes(s));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown ${unknown.join(", ")} (known: ${SYSTEMS.join(", ")})`);
  return names as SystemName[];
}

// The one variable the harness reads: the server to measure when --database-url is not given.
const BenchEnv = z.object({ IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()) });

interface BenchFlags {
  n: number;
  c: number;
  l: number;
  httpSeconds: number;
  scaleRows: number[];
  fairClients: number[];
  systems?: SystemName[];
  isolation: Array<"inline" | "thread">;
  databaseUrl?: string;
  jsonOut?: string;
}

const program = new Command("bench")
  .description("benchmark ix against graphile-worker and pg-boss on one PostgreSQL server (see BENCHMARKS.md)")
  .option("--n <jobs>", "jobs per enqueue and process run", positiveInt, BENCH_DEFAULTS.n)
  .option("--c <concurrency>", "enqueue loops, worker concurrency, HTTP connections, pgbench clients", positiveInt, BENCH_DEFAULTS.c)
  .option("--l <jobs>", "sequential jobs in the latency run", positiveInt, BENCH_DEFAULTS.l)
  .option("--http-seconds <s>", "seconds per HTTP route and for pgbench; 0 skips them", wholeNumber, BENCH_DEFAULTS.httpSeconds)
  .option("--scale-rows <list>", "terminal rows for the claim-latency runs; empty skips them", rowCounts, [...BENCH_DEFAULTS.scaleRows])
  .option(
    "--fair-clients <list>",
    "client counts sharing n pending jobs for the claim-latency runs, with the fairness run (A: n/2 jobs, then B: 20); empty skips them",
    clientCounts,
    [...BENCH_DEFAULTS.fairClients],
  )
  .option("--systems <list>", `queues to run, comma-separated: ${SYSTEMS.join(", ")}; empty skips them`, systemNames)
  .option("--isolation <list>", "where ix's pipelines run in its process phase: inline, thread, or inline,thread for both", isolations, ["inline"])
  .option("--database-url <url>", "the PostgreSQL server (default IX_POSTGRES_URL; without either, an embedded one)")
  .option("--json-out <file>", "also write every result as one JSON document to this file")
  .addHelpText("after", "\nExit codes: 0 done, 1 the run failed, 2 bad options or a bad IX_POSTGRES_URL.")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride()
  .action(async (flags: BenchFlags) => {
    const results = await runBench({
      databaseUrl: flags.databaseUrl ?? parseEnv(BenchEnv, process.env).IX_POSTGRES_URL,
      n: flags.n,
      c: flags.c,
      l: flags.l,
      httpSeconds: flags.httpSeconds,
      scaleRows: flags.scaleRows,
      fairClients: flags.fairClients,
      systems: flags.systems ?? [...SYSTEMS],
      ixIsolation: flags.isolation,
    });
    if (flags.jsonOut) await writeFile(flags.jsonOut, `${JSON.stringify(results, null, 2)}\n`);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help is a success; every other commander error is a usage error (commander printed it).
    process.exitCode = error.code === "commander.helpDisplayed" || error.code === "commander.help" ? 0 : 2;
  } else if (error instanceof ConfigError) {
    console.error(`bench: ${error.message}`);
    process.exitCode = 2;
  } else {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof Error && error.cause) console.error(`  cause: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`);
    process.exitCode = 1;
  }
}
