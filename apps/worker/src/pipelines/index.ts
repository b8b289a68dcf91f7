import type { AnyPipeline } from "../pipeline";
import { extractFields } from "./extract-fields";

export { extractFields, ExtractFieldsOptions, type FieldMatch } from "./extract-fields";

/** The pipelines every worker registers (spec §5). */
export function builtinPipelines(): AnyPipeline[] {
  return [extractFields];
}
