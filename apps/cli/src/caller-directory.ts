import { resolve } from "node:path";

/**
 * `pnpm ix …` runs the root package's script in the repository root, from
 * whichever folder it was typed in, and passes that folder as INIT_CWD.
 * Going back there makes a relative path (`ix submit ./request.json`) mean
 * what the caller meant. Run any other way, ix stays where it was started.
 */
export function enterCallerDirectory(env: Record<string, string | undefined>): void {
  const caller = env.INIT_CWD;
  if (env.npm_lifecycle_event !== "ix" || !caller || resolve(caller) === process.cwd()) return;
  try {
    process.chdir(caller);
  } catch {
    // The folder is gone (or not ours to enter): relative paths resolve from the repository root, as before.
  }
}
