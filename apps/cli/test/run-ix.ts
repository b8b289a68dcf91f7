import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

/** The environment a child `ix` gets: this process's, minus every IX_ variable, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("IX_")));
  return { ...base, ...env };
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
