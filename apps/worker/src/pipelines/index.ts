import type { AnyPipeline } from "../pipeline";
import { extractFields } from "./extract-fields";

export { extractFields, ExtractFieldsOptions, type FieldMatch } from "./extract-fields";

/** The pipelines every worker registers. */
export function builtinPipelines(): AnyPipeline[] {
  return [extractFields];
}
