import { createRequire } from "node:module";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "@ix/contracts";
import { type AnyPipeline, markThreadSource, pipelineShapeError } from "./pipeline.ts";

/**
 * An IX_PIPELINE_MODULES entry could not be loaded; the message names the
 * entry and why. A configuration error like any bad variable (`ix` exits 2).
 */
export class PipelineModuleError extends ConfigError {
  constructor(
    readonly specifier: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super([{ variable: "IX_PIPELINE_MODULES", message: `entry "${specifier}": ${reason}` }], options);
    this.name = "PipelineModuleError";
  }
}

const TYPESCRIPT = /\.[cm]?tsx?$/;
let typeScriptLoader: Promise<void> | null = null;

/**
 * Compiled ix runs on plain Node, which cannot import a pipeline written in
 * TypeScript; tsx registers that ability once per thread, before the first such
 * import (a failed import would stay failed). From source, whatever runs ix
 * (tsx, vitest) already has it.
 */
function loadsTypeScript(location: string): Promise<void> {
  if (!import.meta.url.endsWith(".js") || !TYPESCRIPT.test(new URL(location, "file:///").pathname)) return Promise.resolve();
  typeScriptLoader ??= import("tsx/esm/api").then(({ register }) => void register());
  return typeScriptLoader;
}

function isPath(specifier: string): boolean {
  return specifier.startsWith(".") || isAbsolute(specifier) || specifier.startsWith("file:");
}

/**
 * Where to import an entry from. Paths are relative to `baseDir` (the working
 * directory by default). Package names are resolved from `baseDir` first, so an
 * embedding service's own dependencies are found, then from this package.
 */
function locate(specifier: string, baseDir: string): string {
  if (specifier.startsWith("file:")) return specifier;
  if (isPath(specifier)) return pathToFileURL(resolve(baseDir, specifier)).href;
  try {
    return pathToFileURL(createRequire(resolve(baseDir, "package.json")).resolve(specifier)).href;
  } catch {
    // ESM-only packages have no `require` export; let import() resolve them.
    return specifier;
  }
}

/**
 * Loads pipelines from modules: each must default-export one
 * pipeline or an array of them. Fails on the first bad entry, naming it,
 * so a worker never starts without a pipeline its operator asked for.
 * Each pipeline remembers its module, so a worker with thread isolation
 * loads that module in its pipeline threads and runs the pipeline there.
 */
export async function loadPipelineModules(
  specifiers: readonly string[],
  { baseDir = process.cwd() }: { baseDir?: string } = {},
): Promise<AnyPipeline[]> {
  const loaded: AnyPipeline[] = [];
  for (const specifier of specifiers) {
    let module: { default?: unknown };
    const location = locate(specifier, baseDir);
    try {
      await loadsTypeScript(location);
      module = (await import(location)) as { default?: unknown };
    } catch (error) {
      throw new PipelineModuleError(specifier, `cannot be imported: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    if (module.default === undefined) throw new PipelineModuleError(specifier, "has no default export (export a pipeline or an array of them)");
    const exported = Array.isArray(module.default) ? module.default : [module.default];
    if (exported.length === 0) throw new PipelineModuleError(specifier, "default-exports an empty array");
    exported.forEach((candidate: unknown, index) => {
      const problem = pipelineShapeError(candidate);
      if (problem !== null) {
        const which = Array.isArray(module.default) ? `default export [${index}]` : "default export";
        throw new PipelineModuleError(specifier, `${which} is not a pipeline: ${problem}`);
      }
      markThreadSource(candidate as AnyPipeline, location);
      loaded.push(candidate as AnyPipeline);
    });
  }
  return loaded;
}
