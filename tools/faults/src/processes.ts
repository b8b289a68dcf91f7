import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { waitFor } from "./wait.ts";

// Resolved with createRequire: vitest's module runner has no import.meta.resolve.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const script = fileURLToPath(new URL("./ix-process.ts", import.meta.url));

export type Line = Record<string, unknown>;

/** A real ix worker or API process, its stdout (pino records and `{fault: …}` reports) parsed line by line. */
export interface IxProcess extends LineProcess {
  /** The last `{fault: "memory"}` sample. */
  lastMemory(): { rssBytes: number; maxRssBytes: number } | undefined;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Resets a process's peak RSS (VmHWM) on Linux, so a phase's peak is not hidden
 * by an earlier one's (ix-process.ts reports it); false where that is not possible.
 */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The log line after which each process handles SIGTERM itself. */
const STARTED = { worker: "worker starting", api: "ix api listening" } as const;

/** A child process whose stdout is JSON lines, parsed as they come. */
export interface LineProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly lines: Line[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** Waits for a line matching `match`; fails early if the process dies. */
  waitForLine(what: string, match: (line: Line) => boolean, timeoutMs?: number): Promise<Line>;
}

/**
 * Starts `node --conditions=source --import tsx <script> …args` with exactly
 * `env` (and PATH), inside network namespace `netns` when given (`ip netns exec`
 * execs node in place, so the pid is node's).
 */
export function spawnNodeScript(
  label: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  { netns }: { netns?: string } = {},
): LineProcess {
  const node = [process.execPath, "--conditions=source", "--import", tsx, script, ...args];
  const [command, commandArgs] = netns === undefined ? [node[0] as string, node.slice(1)] : ["ip", ["netns", "exec", netns, ...node]];
  const child = spawn(command, commandArgs, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not start the ${label} process`);
  const pid = child.pid;
  const lines: Line[] = [];
  let stderr = "";
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (text.trim() === "") continue;
      try {
        lines.push(JSON.parse(text) as Line);
      } catch {
        lines.push({ unparsed: text });
      }
    }
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  return {
    pid,
    child,
    lines,
    exited,
    stderr: () => stderr,
    waitForLine: (what, match, timeoutMs = 30_000) =>
      waitFor(
        `${label} ${pid}: ${what}`,
        () => {
          const found = lines.find(match);
          if (found) return found;
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${label} ${pid} exited (${child.exitCode ?? child.signalCode}) before ${what}: ${stderr}`);
          }
          return undefined;
        },
        { timeoutMs },
      ),
  };
}

/** Starts `ix-process.ts <mode>` with exactly `env` (and PATH); in network namespace `netns` when given. */
export function spawnIx(mode: "worker" | "api", env: Record<string, string>, options: { netns?: string } = {}): IxProcess {
  const started = spawnNodeScript(mode, script, [mode], env, options);
  const { child, lines, exited } = started;
  return {
    ...started,
    lastMemory() {
      for (let i = lines.length - 1; i >= 0; i--) {
        const line = lines[i];
        if (line?.fault === "memory" || line?.fault === "exit") return line as unknown as { rssBytes: number; maxRssBytes: number };
      }
      return undefined;
    },
    async stop() {
      // A process still loading its modules has no SIGTERM handler yet: a drain is owed only once it has started.
      const running = waitFor(`the ${mode} process to start`, () => lines.some((line) => line.msg === STARTED[mode]), { timeoutMs: 30_000 });
      await Promise.race([exited, running.catch(() => {})]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** SIGKILLs whatever is still running; for `finally` blocks, so a failed test leaves no process behind. */
export function killAll(processes: Iterable<LineProcess>): void {
  for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
}
