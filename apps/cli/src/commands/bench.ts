import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The harness lives in tools/, which may import apps but never the reverse, so
// `ix bench` runs it as a program instead of importing it.
const HARNESS_ENTRY = join("tools", "bench", "src", "main.ts");

/**
 * The harness's entry in the pnpm workspace that holds `from` (found by walking
 * up to pnpm-workspace.yaml), or null outside the ix repository.
 */
export function findBenchHarness(from: string = fileURLToPath(import.meta.url)): string | null {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) {
      const entry = join(dir, HARNESS_ENTRY);
      return existsSync(entry) ? entry : null;
    }
    if (dirname(dir) === dir) return null;
  }
}

/**
 * Runs the harness with `args` in a child process that shares this one's
 * stdio, cwd and environment, and resolves with its exit code.
 */
export function runBenchHarness(entry: string, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, ["--conditions=source", "--import", import.meta.resolve("tsx"), entry, ...args], { stdio: "inherit" });
  // A signal meant for `ix` (a process manager's SIGTERM) must stop the harness too.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.on("error", (error) => reject(new Error(`could not start the bench harness at ${entry}`, { cause: error })));
    child.on("exit", (code, signal) => {
      for (const s of signals) process.off(s, forward);
      if (signal) console.error(`ix: the bench harness was stopped by ${signal}`);
      resolve(code ?? 1);
    });
  });
}
