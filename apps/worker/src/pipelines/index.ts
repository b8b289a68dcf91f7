import { type AnyPipeline, BUILTIN_SOURCE, markThreadSource } from "../pipeline.ts";
import { extractFields } from "./extract-fields.ts";

// Every pipeline thread loads the built-ins itself.
markThreadSource(extractFields, BUILTIN_SOURCE);

export { extractFields, ExtractFieldsOptions, type FieldMatch } from "./extract-fields.ts";

/** The pipelines every worker registers. */
export function builtinPipelines(): AnyPipeline[] {
  return [extractFields];
}
