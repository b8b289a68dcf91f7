// One ix process for the fault suite: `node --conditions=source --import tsx ix-process.ts worker|api`,
// configured only by its IX_ environment, as production runs `ix worker` / `ix api`.
// Besides ix's own pino logs, it writes `{"fault": …}` lines on stdout:
// memory samples, and for the API where it listens.
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { ConfigError, requirePostgresUrl } from "@ix/contracts";
import { runApiMain } from "@ix/api";
import { connect } from "@ix/store";
import { readWorkerEnv, runWorkerMain } from "@ix/worker";
import { nap, recorded } from "./pipelines.ts";

function report(fault: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ fault, pid: process.pid, ...fields })}\n`);
}

/**
 * RSS now; the kernel's peak RSS of this process's whole life (resourceUsage
 * reports KiB); and on Linux the peak since the test last reset it by writing
 * 5 to /proc/<pid>/clear_refs (VmHWM), so a phase's peak is not hidden by start-up's.
 */
function memory() {
  let hwmBytes: number | null = null;
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (match?.[1]) hwmBytes = Number(match[1]) * 1024;
  } catch {
    // Not Linux: only the lifetime peak is known.
  }
  return { rssBytes: process.memoryUsage().rss, maxRssBytes: process.resourceUsage().maxRSS * 1024, hwmBytes };
}

// The worst event-loop delay since the previous sample: how long the process's own
// loop (claims, completions, callbacks) could not run, e.g. behind a CPU-bound pipeline.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

const sampler = setInterval(() => {
  report("memory", { ...memory(), loopDelayMaxMs: loopDelay.max / 1e6 });
  loopDelay.reset();
}, 200);
sampler.unref();

async function worker(): Promise<void> {
  const env = readWorkerEnv();
  // The side table's own pool: instrumentation, kept apart from the worker's connections.
  const runs = connect(requirePostgresUrl(env.IX_POSTGRES_URL, "run a worker"), {
    max: env.IX_WORKER_CONCURRENCY,
    applicationName: "ix-fault-runs",
    onIdleError: (error) => report("runs-idle-error", { message: error.message }),
  });
  try {
    await runWorkerMain({ env, pipelines: [nap, recorded(runs)] });
  } finally {
    await runs.close();
  }
  report("exit", memory());
}

async function api(): Promise<void> {
  const running = await runApiMain();
  report("listening", { url: running.url });
}

const mode = process.argv[2];
try {
  if (mode === "worker") {
    await worker();
    process.exit(0);
  } else if (mode === "api") {
    await api();
  } else {
    throw new Error(`usage: ix-process.ts worker|api (got ${mode})`);
  }
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
}
