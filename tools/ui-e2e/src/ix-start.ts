import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../../apps/cli/src/main.ts", import.meta.url));
const PIPELINES = fileURLToPath(new URL("./pipelines.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

export interface RunningIx {
  /** The API's base URL, e.g. http://127.0.0.1:41234. */
  base: string;
  child: ChildProcess;
  /** What it printed so far. */
  output: () => string;
  /** Ctrl-C, then waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Runs the real `ix start` (the command `pnpm start` runs) from the sources, on `postgresUrl`, with the
 * `flaky` pipeline loaded through IX_PIPELINE_MODULES, and resolves once it printed its banner.
 */
export async function startIx({ postgresUrl, port, env }: { postgresUrl: string; port: number; env: Record<string, string> }): Promise<RunningIx> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("IX_")));
  const child = spawn(process.execPath, ["--conditions=source", "--import", TSX, CLI, "start"], {
    env: {
      ...base,
      IX_POSTGRES_URL: postgresUrl,
      IX_API_PORT: String(port),
      IX_PIPELINE_MODULES: PIPELINES,
      IX_LOG_LEVEL: "warn",
      IX_LOG_FORMAT: "json",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ix start printed no banner within 90 s:\n${out}`)), 90_000);
    const check = () => {
      if (out.includes("Press Ctrl-C to stop.")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`ix start exited (${code}) before serving:\n${out}`));
    });
  });
  const url = /API\s+(http:\/\/\S+)/.exec(out)?.[1];
  if (!url) throw new Error(`no API URL in the banner:\n${out}`);
  return {
    base: url,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill("SIGINT");
      await exited;
    },
  };
}
