import { fileURLToPath } from "node:url";

/** The repository root: packages are packed and built from here. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
