import { readFile } from "node:fs/promises";
import { ApiEnv } from "@ix/api";
import { WorkerEnv } from "@ix/worker";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { CliEnv } from "../src/env.ts";
import { REPOSITORY_ROOT } from "../src/repository.ts";

// The README's configuration table is the user's reference: it must list every
// variable the schemas read, and the defaults they apply, so it cannot drift.

const schemas: Array<z.ZodObject> = [ApiEnv, WorkerEnv, CliEnv];
const TEST_ONLY = ["IX_TEST_DATABASE_URL"]; // read by the test harness (packages/testing/src/env.ts)

async function readmeTable(): Promise<Map<string, string>> {
  const readme = await readFile(`${REPOSITORY_ROOT}/README.md`, "utf8");
  const rows = new Map<string, string>();
  for (const match of readme.matchAll(/^\| `(IX_[A-Z0-9_]+)` \| ([^|]+) \|/gm)) rows.set(match[1]!, match[2]!.trim());
  return rows;
}

function defaultOf(schema: z.ZodObject, name: string): unknown {
  const parsed = schema.shape[name]!.safeParse(undefined);
  return parsed.success ? parsed.data : undefined;
}

describe("README configuration table", () => {
  it("lists exactly the variables the env schemas read", async () => {
    const documented = [...(await readmeTable()).keys()].sort();
    const read = [...new Set([...schemas.flatMap((s) => Object.keys(s.shape)), ...TEST_ONLY])].sort();
    expect(documented).toEqual(read);
  });

  it("states each schema's default", async () => {
    const table = await readmeTable();
    for (const schema of schemas) {
      for (const name of Object.keys(schema.shape)) {
        const cell = table.get(name)!;
        const value = defaultOf(schema, name);
        const literal = /^`([^`]*)`$/.exec(cell)?.[1];
        if (value === undefined || (Array.isArray(value) && value.length === 0)) {
          expect(cell, name).toMatch(/^\(none/);
        } else {
          expect(literal, name).toBe(String(value));
        }
      }
    }
  });
});
