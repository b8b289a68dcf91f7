import { readFile, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { connect, sql } from "@ix/store";

/** CPU time a phase cost per job: this Node process (the system's own workers run in it) and the server's backends. */
export interface CpuPerJob {
  node_cpu_us_per_job: number;
  /** The backends connected to the phase's database; null when the server's processes cannot be read (not on this host). */
  postgres_cpu_us_per_job: number | null;
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in hundredths of a second on every architecture Node runs on. */
const TICK_US = 10_000;
const SAMPLE_MS = 25;
/** Where to write a CPU profile of each measured phase (one .cpuprofile per phase, for Chrome DevTools); unset: none. */
const PROFILE_DIR = process.env.IX_BENCH_PROFILE_DIR;

/** CPU time a process has used, in microseconds; null when /proc cannot tell (not on this host). */
export async function processCpuUs(pid: number): Promise<number | null> {
  const ticks = await cpuTicks(pid);
  return ticks === null ? null : ticks * TICK_US;
}

async function cpuTicks(pid: number): Promise<number | null> {
  try {
    // Fields after the command name, which is parenthesised and may hold spaces: utime and stime are the 12th and 13th.
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/**
 * Runs `body` and measures the CPU it cost per job. CPU time, unlike
 * throughput, barely moves when other work shares the machine, so it compares
 * systems and levers on a busy machine too (BENCHMARKS.md, Method). The
 * server's side is read from /proc for every backend of `databaseUrl`'s
 * database, sampled every 25 ms: a backend that exits between samples loses
 * at most its last 25 ms.
 */
export async function measureCpu<T>(databaseUrl: string, jobs: number, body: () => Promise<T>): Promise<{ value: T; cpu: CpuPerJob }> {
  const db = connect(databaseUrl, { max: 1, applicationName: "ix-bench-cpu" });
  const seen = new Map<number, { first: number; last: number }>();
  let readable = false;
  let sampling = true;
  const sample = async () => {
    const { rows } = await db.execute<{ pid: number }>(
      sql`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
    );
    for (const { pid } of rows) {
      const ticks = await cpuTicks(pid);
      if (ticks === null) continue;
      readable = true;
      const entry = seen.get(pid);
      if (entry) entry.last = ticks;
      else seen.set(pid, { first: ticks, last: ticks });
    }
  };
  try {
    await sample();
    const sampler = (async () => {
      while (sampling) {
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
        await sample();
      }
    })();
    const before = process.cpuUsage();
    const profiler = PROFILE_DIR ? new Session() : null;
    if (profiler) {
      profiler.connect();
      await profiler.post("Profiler.enable");
      await profiler.post("Profiler.start");
    }
    let value: T;
    try {
      value = await body();
    } finally {
      sampling = false;
      await sampler;
      if (profiler) {
        const { profile } = await profiler.post("Profiler.stop");
        await writeFile(`${PROFILE_DIR}/phase-${Date.now()}.cpuprofile`, JSON.stringify(profile));
        profiler.disconnect();
      }
    }
    const used = process.cpuUsage(before);
    let ticks = 0;
    for (const { first, last } of seen.values()) ticks += last - first;
    return {
      value,
      cpu: {
        node_cpu_us_per_job: Math.round((used.user + used.system) / jobs),
        postgres_cpu_us_per_job: readable ? Math.round((ticks * TICK_US) / jobs) : null,
      },
    };
  } finally {
    await db.close();
  }
}
