import { readFileSync } from "node:fs";

/** The version of the ix command: its package's, read at run time so source and built code agree. */
export function cliVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return manifest.version;
}
