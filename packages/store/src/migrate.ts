import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "./db.ts";

/**
 * Applies the drizzle-kit migrations in `drizzle/` and their hand-written
 * `drizzle/down/` scripts. drizzle-kit's own migrator has no down,
 * so ix keeps its ledger in `ix_schema_migrations`.
 */

const MIGRATIONS_DIR = fileURLToPath(new URL("../drizzle/", import.meta.url));
// Any constant works; it only has to be the same in every ix process.
const MIGRATION_LOCK_KEY = 0x1c_5eed;

const Journal = z.object({
  entries: z.array(z.object({ idx: z.number(), tag: z.string() })),
});

export interface Migration {
  tag: string;
  up: string[];
  down: string[];
  /** sha256 of the up script, to notice a migration edited after it was applied. */
  hash: string;
}

function statements(text: string): string[] {
  return text
    .split("--> statement-breakpoint")
    .map((s) => s.trim())
    .filter((s) => s.replace(/--.*$/gm, "").trim().length > 0);
}

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const journal = Journal.parse(JSON.parse(readFileSync(`${dir}/meta/_journal.json`, "utf8")));
  return journal.entries
    .sort((a, b) => a.idx - b.idx)
    .map(({ tag }) => {
      const up = readFileSync(`${dir}/${tag}.sql`, "utf8");
      let down: string;
      try {
        down = readFileSync(`${dir}/down/${tag}.sql`, "utf8");
      } catch (error) {
        throw new Error(`migration ${tag} has no down script at drizzle/down/${tag}.sql`, { cause: error });
      }
      return { tag, up: statements(up), down: statements(down), hash: createHash("sha256").update(up).digest("hex") };
    });
}

/**
 * Creates the ledger under the migration lock: concurrent `create table if not
 * exists` can still collide in the catalog, so the lock serialises it too.
 */
async function ensureLedger(db: Database): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.execute(sql`
      create table if not exists ix_schema_migrations (
        tag text primary key,
        hash text not null,
        applied_at timestamptz not null default now()
      )`);
  });
}

async function appliedTags(db: Pick<Database, "execute">): Promise<Map<string, string>> {
  const exists = await db.execute<{ t: string | null }>(sql`select to_regclass('ix_schema_migrations')::text as t`);
  if (!exists.rows[0]?.t) return new Map();
  const rows = await db.execute<{ tag: string; hash: string }>(sql`select tag, hash from ix_schema_migrations`);
  return new Map(rows.rows.map((r) => [r.tag, r.hash]));
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  /** Applied migrations whose committed up script no longer matches what ran. */
  modified: string[];
  /** Applied migrations this code does not know (the database is newer than the code). */
  unknown: string[];
  current: boolean;
}

export async function migrationStatus(db: Database, migrations = loadMigrations()): Promise<MigrationStatus> {
  const applied = await appliedTags(db);
  const known = new Set(migrations.map((m) => m.tag));
  const status: MigrationStatus = {
    applied: migrations.filter((m) => applied.has(m.tag)).map((m) => m.tag),
    pending: migrations.filter((m) => !applied.has(m.tag)).map((m) => m.tag),
    modified: migrations.filter((m) => applied.has(m.tag) && applied.get(m.tag) !== m.hash).map((m) => m.tag),
    unknown: [...applied.keys()].filter((tag) => !known.has(tag)),
    current: false,
  };
  status.current = status.pending.length === 0 && status.modified.length === 0 && status.unknown.length === 0;
  return status;
}

/**
 * Applies every pending migration, each in its own transaction under an
 * advisory lock, so two processes migrating at once apply each step once.
 * Returns the tags applied.
 */
export async function migrateUp(db: Database, migrations = loadMigrations()): Promise<string[]> {
  await ensureLedger(db);
  const done: string[] = [];
  for (const migration of migrations) {
    const applied = await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      const exists = await tx.execute(sql`select 1 from ix_schema_migrations where tag = ${migration.tag}`);
      if (exists.rows.length > 0) return false;
      for (const statement of migration.up) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into ix_schema_migrations (tag, hash) values (${migration.tag}, ${migration.hash})`);
      return true;
    });
    if (applied) done.push(migration.tag);
  }
  return done;
}

/** Reverts the last `steps` applied migrations with their down scripts; returns the tags reverted. */
export async function migrateDown(db: Database, { steps = 1 } = {}, migrations = loadMigrations()): Promise<string[]> {
  await ensureLedger(db);
  const reverted: string[] = [];
  for (let i = 0; i < steps; i++) {
    const tag = await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      const last = await tx.execute<{ tag: string }>(
        sql`select tag from ix_schema_migrations order by tag desc limit 1`,
      );
      const lastTag = last.rows[0]?.tag;
      if (lastTag === undefined) return null;
      const migration = migrations.find((m) => m.tag === lastTag);
      if (!migration) throw new Error(`cannot revert ${lastTag}: this version of ix has no such migration`);
      for (const statement of migration.down) await tx.execute(sql.raw(statement));
      await tx.execute(sql`delete from ix_schema_migrations where tag = ${lastTag}`);
      return lastTag;
    });
    if (tag === null) break;
    reverted.push(tag);
  }
  return reverted;
}
