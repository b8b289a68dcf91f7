import { z } from "zod";

/** Start-up configuration was wrong; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(
    readonly problems: Array<{ variable: string; message: string }>,
    options?: ErrorOptions,
  ) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join("\n")}`, options);
    this.name = "ConfigError";
  }
}

/**
 * Parses environment variables once, at start-up, with a zod object whose keys
 * are the variable names. Throws a ConfigError naming each bad one.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      variable: issue.path.map(String).join(".") || "(environment)",
      message: issue.message,
    })),
  );
}

/** Helpers for env schemas: variables arrive as strings, and empty means unset. */
export const envVar = {
  /** An integer within [min, max]. */
  int: (min: number, max: number) =>
    z
      .string()
      .trim()
      .regex(/^-?\d+$/, "must be an integer")
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
  /** A positive number of seconds (fractions allowed, for tests). */
  seconds: (max = 86_400) =>
    z
      .string()
      .trim()
      .regex(/^\d+(\.\d+)?$/, "must be a number of seconds")
      .transform(Number)
      .pipe(z.number().positive().max(max)),
  /** A comma-separated list; blanks dropped. */
  list: () =>
    z
      .string()
      .transform((s) => s.split(",").map((item) => item.trim()).filter((item) => item.length > 0)),
  /** A postgres:// or postgresql:// URL. */
  postgresUrl: () =>
    z.string().refine((value) => {
      if (!URL.canParse(value)) return false;
      const { protocol } = new URL(value);
      return protocol === "postgres:" || protocol === "postgresql:";
    }, "must be a postgres:// URL"),
};

/** Treats an empty variable as unset, so `IX_X=` falls back to the default. */
export function optionalEnv<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === "" ? undefined : value), schema.optional());
}

/** An optional variable with a default: unset or empty gives `fallback`. */
export function envDefault<T extends z.ZodType>(schema: T, fallback: z.output<T>) {
  return optionalEnv(schema).transform((value) => (value === undefined ? fallback : value) as z.output<T>);
}

/**
 * IX_WORKER_REGISTRY_DAYS: how many days a worker's registration counts after
 * it was last seen. `ix api` accepts the use_cases such workers serve and `ix
 * prune` deletes the registrations past it, so both read this one definition.
 */
export const workerRegistryDaysEnv = envDefault(envVar.int(1, 3_650), 7);

/** The database URL a command cannot run without (`ix start` provisions its own, so it never calls this). */
export function requirePostgresUrl(url: string | undefined, purpose: string): string {
  if (url === undefined || url === "") {
    throw new ConfigError([{ variable: "IX_POSTGRES_URL", message: `is required to ${purpose}` }]);
  }
  return url;
}
