import { defineIxConfig } from "../../vitest.shared.ts";

export default defineIxConfig(import.meta.dirname, { database: true });
