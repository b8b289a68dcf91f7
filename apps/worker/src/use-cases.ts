import { ConfigError } from "@ix/contracts";
import type { PipelineRegistry } from "./pipeline";

/**
 * The use_cases a worker claims (README.md, "Routing"): the ones it is told to
 * serve (IX_WORKER_USE_CASES), each of which must have a registered pipeline,
 * or else every registered pipeline's. Throws a ConfigError naming the unknown
 * ones and the registered pipelines, before anything starts.
 */
export function servedUseCases(registry: PipelineRegistry, requested: readonly string[] | null): string[] {
  if (requested === null) return registry.names;
  const unknown = requested.filter((name) => registry.get(name) === undefined);
  if (unknown.length > 0) {
    const registered = registry.names.length > 0 ? registry.names.join(", ") : "none";
    throw new ConfigError([
      {
        variable: "IX_WORKER_USE_CASES",
        message: `no pipeline is registered for ${unknown.map((name) => `"${name}"`).join(", ")} (registered: ${registered})`,
      },
    ]);
  }
  if (requested.length === 0) throw new ConfigError([{ variable: "IX_WORKER_USE_CASES", message: "names no use_case" }]);
  return [...new Set(requested)].sort();
}

/** Throws a ConfigError unless every cap is a positive whole number (IX_USE_CASE_CONCURRENCY, or a config built in code). */
export function checkUseCaseCaps(caps: Readonly<Record<string, number>>): void {
  const bad = Object.entries(caps).filter(([, cap]) => !Number.isInteger(cap) || cap < 1);
  if (bad.length > 0) {
    throw new ConfigError(
      bad.map(([name, cap]) => ({ variable: "IX_USE_CASE_CONCURRENCY", message: `the cap of "${name}" must be a positive whole number, got ${cap}` })),
    );
  }
}
