import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

/**
 * Linux network namespaces as test hosts. One run owns a bridge in the root namespace with the
 * address 10.77.<octet>.1/24 and, per host, a namespace joined to the bridge by a
 * veth pair; the host end has its own address in that /24 and is the namespace's
 * only link besides loopback. Every name carries the run's random id, so runs
 * side by side never collide, and a run's state directory records its owner's
 * pid, so a later run can sweep what a killed one left behind.
 */

/** Every namespace and root-side link of this harness starts with this. */
export const PREFIX = "ixh";
/** Run state: one directory per run (its owner's pid), one per claimed /24. */
const STATE = join(tmpdir(), "ix-hosts");

export async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await exec("ip", args, { timeout: 10_000 });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`ip ${args.join(" ")} failed${stderr ? `: ${stderr}` : ""}`, { cause: error });
  }
}

/**
 * Fails with a message saying what is missing when this machine cannot make
 * namespaces (not root, no iproute2, no CAP_NET_ADMIN): a network test must
 * fail there, not skip.
 */
export async function assertNetnsAvailable(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error("the multi-host harness needs root (ip netns add, veth, bridge): run the test as root, as CI does");
  }
  const probe = `${PREFIX}-probe-${randomBytes(3).toString("hex")}`;
  try {
    await ip("netns", "add", probe);
  } catch (error) {
    throw new Error(`network namespaces are not available here (\`ip netns add\` failed; install iproute2 and run with CAP_NET_ADMIN): ${(error as Error).message}`);
  } finally {
    await ip("netns", "del", probe).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pids of every process inside namespace `ns` (`ip netns pids`). */
export async function namespacePids(ns: string): Promise<number[]> {
  const out = await ip("netns", "pids", ns).catch(() => "");
  return out.split(/\s+/).filter(Boolean).map(Number);
}

/** SIGKILLs every process inside `ns`, then deletes it (its veth ends go with it). */
export async function removeNamespace(ns: string): Promise<void> {
  for (const pid of await namespacePids(ns)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  await ip("netns", "del", ns).catch(() => undefined);
}

export async function runOwner(runId: string): Promise<number | null> {
  const text = await readFile(join(STATE, runId, "owner"), "utf8").catch(() => null);
  return text === null ? null : Number(text);
}

/**
 * Removes what runs whose owner process is gone left behind: their namespaces
 * (and the processes in them), root-side links, claimed subnets and state
 * directories, after calling `beforeRemove` (e.g. to stop a PostgreSQL the run
 * started in its state directory). Live runs (another test file, another
 * checkout) are left alone. Returns the run ids swept.
 */
export async function sweepStaleRuns(beforeRemove: (runDir: string) => Promise<void> = async () => undefined): Promise<string[]> {
  await mkdir(STATE, { recursive: true });
  const stale = new Set<string>();
  const isStale = async (runId: string) => {
    const owner = await runOwner(runId);
    return owner === null || !alive(owner);
  };
  const namespaces = (await ip("netns", "list").catch(() => ""))
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${PREFIX}-`) && !name.startsWith(`${PREFIX}-probe-`));
  for (const ns of namespaces) {
    const runId = ns.split("-")[1] ?? "";
    if (await isStale(runId)) {
      stale.add(runId);
      await removeNamespace(ns);
    }
  }
  const links = (await ip("-o", "link", "show").catch(() => ""))
    .split("\n")
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? "")
    .filter((name) => name.startsWith(PREFIX) && name.length >= PREFIX.length + 6);
  for (const link of links) {
    const runId = link.slice(PREFIX.length, PREFIX.length + 6);
    if (await isStale(runId)) {
      stale.add(runId);
      await ip("link", "del", link).catch(() => undefined);
    }
  }
  for (const entry of await readdir(STATE)) {
    if (entry.startsWith("net-")) {
      const runId = (await readFile(join(STATE, entry, "run"), "utf8").catch(() => "")).trim();
      if (runId === "" || (await isStale(runId))) await rm(join(STATE, entry), { recursive: true, force: true });
    } else if (/^[0-9a-f]{6}$/.test(entry) && (await isStale(entry))) {
      stale.add(entry);
      await beforeRemove(join(STATE, entry));
      await rm(join(STATE, entry), { recursive: true, force: true });
    }
  }
  return [...stale];
}

/** One simulated host: a namespace with one link to the run's bridge. */
export interface Host {
  readonly name: string;
  /** The namespace (`ip netns exec <ns> …`). */
  readonly ns: string;
  /** Its address on the run's /24. */
  readonly address: string;
  /** The veth end on the bridge (root namespace): taking it down cuts the host off without closing any socket. */
  readonly link: string;
}

export interface Network {
  readonly runId: string;
  /** Where the run keeps its files (removed by close()). */
  readonly dir: string;
  /** The root namespace's address on the bridge: what hosts reach the root namespace by (PostgreSQL listens here). */
  readonly gateway: string;
  readonly subnet: string;
  readonly hosts: ReadonlyMap<string, Host>;
  addHost(name: string): Promise<Host>;
  /** Takes the host's link down: its packets vanish both ways, no socket is closed or reset. */
  partition(host: Host): Promise<void>;
  heal(host: Host): Promise<void>;
  /** Removes every namespace (killing what runs in them), the bridge and the run's files. */
  close(): Promise<void>;
}

/** At most this many hosts per run: the harness is bounded (addresses .10 … .59). */
export const MAX_HOSTS = 50;

async function claimSubnet(runId: string): Promise<number> {
  const used = await ip("-4", "-o", "addr", "show");
  const octets = Array.from({ length: 256 }, (_, i) => i).sort(() => Math.random() - 0.5);
  for (const octet of octets) {
    if (used.includes(` 10.77.${octet}.`)) continue;
    try {
      // mkdir is atomic: two runs starting together never take the same /24.
      await mkdir(join(STATE, `net-${octet}`));
    } catch {
      continue;
    }
    await writeFile(join(STATE, `net-${octet}`, "run"), runId);
    return octet;
  }
  throw new Error("no free 10.77.x.0/24 for the test network");
}

/**
 * Creates a run's network: sweeps stale runs, claims a /24, makes the bridge
 * `ixh<run>br` with the gateway address. Hosts are added with addHost().
 * `beforeSweep` is handed each stale run's directory before it is removed.
 */
export async function createNetwork({ beforeSweep }: { beforeSweep?: (runDir: string) => Promise<void> } = {}): Promise<Network> {
  await assertNetnsAvailable();
  await sweepStaleRuns(beforeSweep);
  const runId = randomBytes(3).toString("hex");
  const dir = join(STATE, runId);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFile(join(dir, "owner"), String(process.pid));
  const octet = await claimSubnet(runId);
  const subnet = `10.77.${octet}.0/24`;
  const gateway = `10.77.${octet}.1`;
  const bridge = `${PREFIX}${runId}br`;
  const hosts = new Map<string, Host>();
  let closed = false;

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const host of hosts.values()) await removeNamespace(host.ns);
    await ip("link", "del", bridge).catch(() => undefined);
    await rm(join(STATE, `net-${octet}`), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }

  try {
    await ip("link", "add", bridge, "type", "bridge");
    await ip("addr", "add", `${gateway}/24`, "dev", bridge);
    await ip("link", "set", bridge, "up");
  } catch (error) {
    await close();
    throw error;
  }

  return {
    runId,
    dir,
    gateway,
    subnet,
    hosts,
    async addHost(name) {
      if (!/^[a-z][a-z0-9]{0,11}$/.test(name)) throw new Error(`host name "${name}" must be 1-12 lowercase letters and digits`);
      if (hosts.has(name)) throw new Error(`host ${name} exists already`);
      if (hosts.size >= MAX_HOSTS) throw new Error(`at most ${MAX_HOSTS} hosts per network`);
      const index = hosts.size;
      const host: Host = {
        name,
        ns: `${PREFIX}-${runId}-${name}`,
        address: `10.77.${octet}.${10 + index}`,
        // IFNAMSIZ: at most 15 characters.
        link: `${PREFIX}${runId}v${index}`,
      };
      hosts.set(name, host);
      const peer = `${PREFIX}${runId}p${index}`;
      await ip("netns", "add", host.ns);
      await ip("link", "add", host.link, "type", "veth", "peer", "name", peer);
      await ip("link", "set", peer, "netns", host.ns);
      await ip("-n", host.ns, "link", "set", peer, "name", "eth0");
      await ip("-n", host.ns, "addr", "add", `${host.address}/24`, "dev", "eth0");
      await ip("-n", host.ns, "link", "set", "eth0", "up");
      await ip("-n", host.ns, "link", "set", "lo", "up");
      await ip("link", "set", host.link, "master", bridge);
      await ip("link", "set", host.link, "up");
      return host;
    },
    // The root-side end goes down: the host keeps its address and route (its eth0 only loses carrier),
    // so its sockets see no error, and what it sends is dropped, as on a cut cable.
    partition: (host) => ip("link", "set", host.link, "down").then(() => undefined),
    heal: (host) => ip("link", "set", host.link, "up").then(() => undefined),
    close,
  };
}

/** Runs `command` inside `host`'s namespace; resolves with its stdout, rejects with its stderr. */
export async function runIn(host: Host, command: string, args: string[], timeoutMs = 20_000): Promise<string> {
  try {
    const { stdout } = await exec("ip", ["netns", "exec", host.ns, command, ...args], { timeout: timeoutMs });
    return stdout;
  } catch (error) {
    throw new Error(`${command} on host ${host.name} failed: ${(error as { stderr?: string }).stderr ?? error}`, { cause: error });
  }
}
