import { fileURLToPath } from "node:url";

/** The repository root: `ix start` keeps its embedded database under `.ix/` here (git-ignored). */
export const REPOSITORY_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
