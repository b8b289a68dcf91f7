import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { REPOSITORY_ROOT } from "./repository.ts";

/**
 * The record of the `ix start` running here, so `ix submit`, `ix get`,
 * `ix migrate`, `ix prune`, … reach it without variables: its API's URL
 * (the port may be any) and, for an embedded server, the PostgreSQL URL
 * with its password. Written by `ix start` once it serves, removed when it
 * stops cleanly; a record left by a killed run is recognised by its pid.
 * A variable that is set always wins over the record.
 */

const InstanceRecord = z.object({
  pid: z.number().int().positive(),
  apiUrl: z.string(),
  /** Only for embedded PostgreSQL: a URL the user passed in IX_POSTGRES_URL is theirs and is not written to disk. */
  postgresUrl: z.string().optional(),
  startedAt: z.string(),
});
export type InstanceRecord = z.infer<typeof InstanceRecord>;

/** Where ix start keeps its local state: IX_STATE_DIR, else `.ix/` in the repository (git-ignored). */
export function stateDir(env: Record<string, string | undefined>): string {
  return env.IX_STATE_DIR || join(REPOSITORY_ROOT, ".ix");
}

export function instanceFile(dir: string): string {
  return join(dir, "instance.json");
}

/** Whether a process with this pid exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Records the running instance, readable by its user only (mode 0600: the
 * embedded URL carries a password). Written to a temporary name and renamed,
 * so a reader never sees half a record. Returns the removal for a clean stop,
 * which leaves a record that a later `ix start` has since replaced.
 */
export async function recordInstance(dir: string, record: Omit<InstanceRecord, "startedAt">): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const file = instanceFile(dir);
  const temporary = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  const full: InstanceRecord = { ...record, startedAt: new Date().toISOString() };
  await writeFile(temporary, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  await rename(temporary, file);
  return async () => {
    const current = await readFile(file, "utf8").then(
      (text) => InstanceRecord.safeParse(JSON.parse(text)).data,
      () => undefined,
    );
    if (current?.pid === record.pid) await rm(file, { force: true });
  };
}

/** The record of an `ix start` that is still running, if any; a stale or unreadable one is reported through `warn` and ignored. */
export function runningInstance(dir: string, warn: (message: string) => void): InstanceRecord | undefined {
  const file = instanceFile(dir);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined; // no ix start has run here, or it stopped cleanly
  }
  let parsed: InstanceRecord | undefined;
  try {
    parsed = InstanceRecord.safeParse(JSON.parse(text)).data;
  } catch {
    parsed = undefined;
  }
  if (!parsed) {
    warn(`ignoring ${file}: not a record ix start wrote`);
    return undefined;
  }
  if (!processAlive(parsed.pid)) {
    warn(`ignoring ${file}: the ix start that wrote it (pid ${parsed.pid}) is no longer running`);
    return undefined;
  }
  return parsed;
}

/**
 * The environment a client command parses: `variable` filled in from the
 * running instance when it is not set. Only the variable the command needs
 * is looked up, so a stale record is reported only when it mattered.
 */
export function withRunningInstance(
  env: Record<string, string | undefined>,
  variable: "IX_API_URL" | "IX_POSTGRES_URL",
  warn: (message: string) => void = (message) => console.error(`ix: ${message}`),
): Record<string, string | undefined> {
  if (env[variable]) return env;
  const record = runningInstance(stateDir(env), warn);
  const value = variable === "IX_API_URL" ? record?.apiUrl : record?.postgresUrl;
  return value ? { ...env, [variable]: value } : env;
}
