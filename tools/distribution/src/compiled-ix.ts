import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { outsideEnv } from "./pack.ts";
import { ROOT } from "./repository.ts";

/** The compiled `ix` command, as production runs it: `node apps/cli/dist/main.js <command>`. */
export const IX_MAIN = join(ROOT, "apps", "cli", "dist", "main.js");

export type Line = Record<string, unknown>;

export interface CompiledIx {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly lines: Line[];
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  output(): string;
  /** Resolves with the first log line matching `match`; rejects if the process exits first or after `timeoutMs`. */
  waitForLine(what: string, match: (line: Line) => boolean, timeoutMs?: number): Promise<Line>;
}

/** Starts `node apps/cli/dist/main.js <args>` with `env` (and nothing from this workspace's environment). */
export function startCompiledIx(args: string[], env: Record<string, string>): CompiledIx {
  const child = spawn(process.execPath, [IX_MAIN, ...args], { env: outsideEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not start ix ${args.join(" ")}`);
  const lines: Line[] = [];
  let output = "";
  let buffered = "";
  const waiters = new Set<() => void>();
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    buffered += chunk.toString();
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as Line);
      } catch {
        // not a log line
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    pid: child.pid,
    lines,
    exited,
    output: () => output,
    waitForLine(what, match, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find(match);
          if (line) {
            done();
            resolve(line);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${what} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        const onExit = () => {
          done();
          reject(new Error(`ix exited before ${what}:\n${output}`));
        };
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off("exit", onExit);
        };
        waiters.add(check);
        child.once("exit", onExit);
        check();
      });
    },
  };
}

/** `pid` and every process below it, right now (Linux `ps`). */
export function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    // ps exits 1 when there are none
  }
  return [pid, ...children.flatMap(processTree)];
}

/** Whether a process with this id exists. */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
