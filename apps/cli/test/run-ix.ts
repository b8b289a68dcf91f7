import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

/**
 * Where a child `ix` looks for the record of a running `ix start` unless a test gives its own: a directory
 * that does not exist, so no test finds the instance a developer runs in this checkout (or another test's).
 */
const NO_STATE = join(tmpdir(), `ix-test-no-state-${process.pid}-${randomBytes(4).toString("hex")}`);

/** The environment a child `ix` gets: this process's, minus every IX_ variable, plus `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("IX_")));
  return { ...base, IX_STATE_DIR: NO_STATE, ...env };
}

/** Starts `ix <args>` as a real child process, exactly as `pnpm ix` runs it. */
export function spawnIx(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--conditions=source", "--import", TSX, MAIN, ...args], { env: childEnv(env), stdio: ["pipe", "pipe", "pipe"] });
}

export interface IxResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ix <args>` to completion, feeding `input` on stdin. */
export function runIx(args: string[], env: Record<string, string> = {}, input?: string): Promise<IxResult> {
  return startIx(args, env, input).result;
}

/** Starts `ix <args>`; `output` fills as it prints (to watch progress), `result` resolves once it exited. */
export function startIx(
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): { child: ChildProcess; output: { stdout: string; stderr: string }; result: Promise<IxResult> } {
  const child = spawnIx(args, env);
  const output = { stdout: "", stderr: "" };
  child.stdout!.on("data", (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output.stderr += chunk.toString()));
  child.stdin!.end(input);
  const result = new Promise<IxResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, ...output }));
  });
  return { child, output, result };
}

/** Resolves when `child` has printed `marker` on stdout; rejects if it exits first. */
export function waitForOutput(child: ChildProcess, marker: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no "${marker}" within ${timeoutMs} ms; stdout: ${out}\nstderr: ${err}`)), timeoutMs);
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`ix exited (${code}) before printing "${marker}"; stdout: ${out}\nstderr: ${err}`));
    });
  });
}

/** Resolves with the exit code once `child` has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.on("exit", (code) => resolve(code)));
}

/**
 * Starts `ix <args>` in a terminal of its own: `script` (util-linux) gives it a pseudo-terminal as
 * stdout and controlling terminal, as a person's shell would. Killing `terminal` closes that terminal,
 * which hangs up the session (SIGHUP), as closing a terminal window does.
 */
export function spawnIxInTerminal(args: string[], env: Record<string, string> = {}): { terminal: ChildProcess; output(): string } {
  const command = [process.execPath, "--conditions=source", "--import", TSX, MAIN, ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
  const terminal = spawn("script", ["--quiet", "--flush", "--return", "--command", `exec ${command}`, "/dev/null"], {
    env: { ...childEnv(env), SHELL: "/bin/sh" },
    // stdin stays open: script ends the session when its input ends.
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  terminal.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  terminal.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { terminal, output: () => output };
}
