import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@ix/provision";
import { connect, migrateUp, pg } from "@ix/store";
import { waitFor } from "./wait.ts";

/**
 * A primary and a hot standby fed by streaming replication, both temporary
 * clusters of the machine's PostgreSQL binaries (Debian's postgresql-NN
 * package: initdb, pg_ctl, pg_basebackup), on free loopback ports, in one
 * temporary directory that close() removes. This is what a managed
 * PostgreSQL with a read replica or a failover standby runs; ix is tested
 * against it unchanged (FAULTS.md, "Replication").
 */

/** The newest /usr/lib/postgresql/<major>/bin with the tools this needs. */
export function postgresBinDir(root = "/usr/lib/postgresql"): string {
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "pg_basebackup")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const major = majors[0];
  if (major === undefined) {
    throw new Error(`no PostgreSQL server binaries under ${root}: install Debian's postgresql package (initdb, pg_ctl, pg_basebackup)`);
  }
  return join(root, major, "bin");
}

/**
 * Who runs the servers: PostgreSQL refuses root, so under root they run as
 * the `postgres` system user, which the server package creates (as the
 * embedded provisioner does; PgBouncer's harness uses `nobody` because it
 * needs no data directory of its own).
 */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch (error) {
    throw new Error("running as root, the PostgreSQL servers need a `postgres` system user, and there is none", { cause: error });
  }
}

/** Runs one of PostgreSQL's programs to its end; fails with what it printed. */
function run(bin: string, args: string[], user: { uid: number; gid: number } | undefined, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      cwd,
      // pg_ctl's server keeps its stdio: ignore it, the server logs to its own file.
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", LC_ALL: "C.UTF-8" },
      ...(user ?? {}),
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${bin} ${args.join(" ")} exited ${code ?? signal}:\n${output}`));
    });
  });
}

/** Settings both servers start from (the standby's copy comes with its base backup). */
const COMMON_SETTINGS = {
  listen_addresses: "'127.0.0.1'",
  unix_socket_directories: "''",
  // Temporary clusters: durability against a machine crash is not what these tests are about;
  // an immediate stop (a process crash) keeps what the kernel was given either way.
  fsync: "off",
  full_page_writes: "off",
  shared_buffers: "32MB",
  max_connections: "100",
  max_wal_senders: "4",
  wal_level: "replica",
  // The standby answers queries while it replays (a read replica).
  hot_standby: "on",
  // The standby tells its primary which rows its queries still need, so a long read on it is not cancelled by replay.
  hot_standby_feedback: "on",
  log_min_messages: "warning",
  log_connections: "off",
};

/** The ways the primary can wait for its standby at commit (docs/OPERATIONS.md, "Failover"). */
export type SynchronousCommit = "local" | "remote_write" | "on" | "remote_apply";

export interface ReplicationOptions {
  /**
   * Makes the standby synchronous (`synchronous_standby_names`), so that a
   * commit waits for it as `synchronousCommit` says; without it replication is
   * asynchronous, and a commit the primary acknowledged can be missing on the standby.
   */
  synchronous?: boolean;
  /** `synchronous_commit` on the primary; `on` unless given. */
  synchronousCommit?: SynchronousCommit;
  /** The standby's `recovery_min_apply_delay` at start (ms): artificial replication lag. */
  applyDelayMs?: number;
}

export interface Cluster {
  readonly role: "primary" | "standby";
  readonly port: number;
  readonly dataDir: string;
  /** The server's URL for database `database` (`postgres` when not given). */
  url(database?: string): string;
  /** Starts it (again); resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server: `fast` lets sessions end cleanly, `immediate` is a crash (no shutdown checkpoint). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Its log file, for failure messages. */
  log(): Promise<string>;
}

export interface Replication {
  readonly primary: Cluster;
  readonly standby: Cluster;
  /** Creates database `name` on the primary with ix's schema migrated, and waits until the standby has it too. */
  createIxDatabase(name?: string): Promise<void>;
  /** Changes the standby's `recovery_min_apply_delay` and reloads it. */
  setApplyDelay(ms: number): Promise<void>;
  /** Waits until the standby has replayed everything the primary had written when this was called. */
  caughtUp(timeoutMs?: number): Promise<void>;
  /** Promotes the standby (`pg_ctl promote`) and waits until it accepts writes. */
  promote(): Promise<void>;
  /** Stops both servers (immediately) and removes their directory. */
  close(): Promise<void>;
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

function settingsText(settings: Record<string, string>): string {
  return `\n# ix faults harness\n${Object.entries(settings)
    .map(([name, value]) => `${name} = ${value}`)
    .join("\n")}\n`;
}

/**
 * initdb, start the primary, pg_basebackup -R a standby from it, start the
 * standby and wait until it streams. Anything that fails on the way stops
 * what started and removes the directory.
 */
export async function startReplication(options: ReplicationOptions = {}): Promise<Replication> {
  const bin = postgresBinDir();
  const user = serverUser();
  const root = await mkdtemp(join(tmpdir(), "ix-replication-"));
  const started = new Set<Cluster>();
  const close = async () => {
    for (const cluster of [...started].reverse()) await cluster.stop("immediate").catch(() => {});
    await rm(root, { recursive: true, force: true });
  };
  try {
    // The servers' user owns the tree; its data directories must be 0700.
    await chmod(root, 0o755);
    if (user) await chown(root, user.uid, user.gid);
    const cluster = (role: Cluster["role"], port: number): Cluster => {
      const dataDir = join(root, role);
      const logFile = join(root, `${role}.log`);
      let running = false;
      const log = () => readFile(logFile, "utf8").catch(() => "");
      return {
        role,
        port,
        dataDir,
        url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
        async start() {
          started.add(this);
          // Set before pg_ctl returns: a start that timed out may still have left a server to stop.
          running = true;
          try {
            await run(join(bin, "pg_ctl"), ["start", "-D", dataDir, "-l", logFile, "-w", "-t", "30"], user, root);
          } catch (error) {
            throw new Error(`the ${role} did not start:\n${await log()}`, { cause: error });
          }
        },
        async stop(mode = "fast") {
          if (!running) return;
          running = false;
          await run(join(bin, "pg_ctl"), ["stop", "-D", dataDir, "-m", mode, "-w", "-t", "30"], user, root);
        },
        log,
      };
    };

    const primary = cluster("primary", await freePort());
    await run(join(bin, "initdb"), ["-D", primary.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"], user, root);
    await appendFile(
      join(primary.dataDir, "postgresql.conf"),
      settingsText({
        ...COMMON_SETTINGS,
        port: String(primary.port),
        synchronous_standby_names: options.synchronous ? "'standby'" : "''",
        synchronous_commit: options.synchronousCommit ?? "on",
      }),
    );
    await primary.start();

    const standby = cluster("standby", await freePort());
    await mkdir(standby.dataDir, { mode: 0o700 });
    if (user) await chown(standby.dataDir, user.uid, user.gid);
    // -R writes primary_conninfo and standby.signal; -X stream copies the WAL written meanwhile.
    await run(
      join(bin, "pg_basebackup"),
      ["-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres", "-D", standby.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
      user,
      root,
    );
    await appendFile(
      join(standby.dataDir, "postgresql.conf"),
      settingsText({
        port: String(standby.port),
        // The walreceiver's application_name, which synchronous_standby_names names.
        cluster_name: "'standby'",
        recovery_min_apply_delay: `'${options.applyDelayMs ?? 0}ms'`,
        // Once promoted, it is a primary with no standby of its own: commits must not wait for one.
        synchronous_standby_names: "''",
      }),
    );
    await standby.start();
    await waitFor(
      "the standby to stream from the primary",
      async () =>
        (await query<{ state: string }>(primary.url(), "select state from pg_stat_replication where application_name = 'standby'")).some(
          (row) => row.state === "streaming",
        ),
      { timeoutMs: 30_000, intervalMs: 50 },
    );

    const caughtUp = async (timeoutMs = 30_000) => {
      const [row] = await query<{ lsn: string }>(primary.url(), "select pg_current_wal_lsn()::text as lsn");
      const lsn = row?.lsn;
      if (lsn === undefined) throw new Error("the primary reported no WAL position");
      await waitFor(
        `the standby to replay up to ${lsn}`,
        async () => {
          const [replayed] = await query<{ done: boolean }>(standby.url(), `select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn as done`);
          return replayed?.done === true;
        },
        { timeoutMs, intervalMs: 20 },
      );
    };

    return {
      primary,
      standby,
      caughtUp,
      async createIxDatabase(name = "ix") {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${JSON.stringify(name)}: lower-case letters, digits and _ only`);
        await query(primary.url(), `create database ${name}`);
        const db = connect(primary.url(name), { max: 1 });
        try {
          await migrateUp(db);
        } finally {
          await db.close();
        }
        await caughtUp();
      },
      async setApplyDelay(ms) {
        // ALTER SYSTEM writes only postgresql.auto.conf, which a hot standby may do.
        await query(standby.url(), `alter system set recovery_min_apply_delay = '${Math.trunc(ms)}ms'`);
        await query(standby.url(), "select pg_reload_conf()");
        await waitFor(
          `recovery_min_apply_delay = ${ms} ms on the standby`,
          async () => {
            const [row] = await query<{ setting: string }>(standby.url(), "select setting from pg_settings where name = 'recovery_min_apply_delay'");
            return Number(row?.setting) === Math.trunc(ms);
          },
          { timeoutMs: 10_000, intervalMs: 20 },
        );
      },
      async promote() {
        await run(join(bin, "pg_ctl"), ["promote", "-D", standby.dataDir, "-w", "-t", "30"], user, root);
        await waitFor(
          "the promoted standby to accept writes",
          async () => (await query<{ recovery: boolean }>(standby.url(), "select pg_is_in_recovery() as recovery"))[0]?.recovery === false,
          { timeoutMs: 30_000, intervalMs: 20 },
        );
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
