import { defineIxConfig } from "../../vitest.shared";

export default defineIxConfig(import.meta.dirname, { database: false });
