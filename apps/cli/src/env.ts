import { envDefault, envVar, optionalEnv, parseEnv, workerRegistryDaysEnv } from "@ix/contracts";
import { z } from "zod";

/**
 * The variables the `ix` command itself reads; `ix api`, `ix worker`
 * and `ix start` also parse the api and worker schemas. Parsed once per command.
 */
export const CliEnv = z.object({
  // The database for `ix migrate` and `ix prune` (unset: the embedded one of the `ix start` running here);
  // `ix start` uses embedded PostgreSQL without it.
  IX_POSTGRES_URL: optionalEnv(envVar.postgresUrl()),
  // Where `ix submit`, `ix get`, `ix jobs`, `ix cancel` and `ix retry` find the API (unset: the `ix start` running here, else the default).
  IX_API_URL: envDefault(
    z.string().refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), "must be an http(s) URL"),
    "http://127.0.0.1:8080",
  ),
  // Bearer key those commands present (one of IX_API_KEYS on the server).
  IX_API_KEY: optionalEnv(z.string().min(1)),
  // Where `ix start` keeps its embedded PostgreSQL data (default: pg/ in IX_STATE_DIR).
  IX_DATA_DIR: optionalEnv(z.string().min(1)),
  // Where `ix start` records the running instance for the other commands (default: .ix/ in the repository).
  IX_STATE_DIR: optionalEnv(z.string().min(1)),
  // `ix prune` deletes worker registrations not seen within this many days: the API's window, so a
  // prune never changes which use_cases it accepts.
  IX_WORKER_REGISTRY_DAYS: workerRegistryDaysEnv,
  // Port for `ix start`'s embedded PostgreSQL (default: any free port).
  IX_EMBEDDED_PG_PORT: optionalEnv(envVar.int(1, 65_535)),
});
export type CliEnv = z.infer<typeof CliEnv>;

export function parseCliEnv(env: Record<string, string | undefined>): CliEnv {
  return parseEnv(CliEnv, env);
}
