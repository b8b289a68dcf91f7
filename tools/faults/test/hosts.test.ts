import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { pg } from "@ix/store";
import { describe, expect, test } from "vitest";
import { printFigures } from "../src/figures.ts";
import { type Cluster, ip, PREFIX, runIn, startCluster } from "../src/hosts/index.ts";

const exec = promisify(execFile);

/** From inside `ns`: opens a TCP connection to host:port and says how it went within `ms`. */
const CONNECT = `
const [host, port, ms] = process.argv.slice(1);
const socket = require("node:net").connect({ host, port: Number(port) });
const began = Date.now();
const done = (outcome) => { console.log(JSON.stringify({ outcome, ms: Date.now() - began })); process.exit(0); };
socket.on("connect", () => done("connected"));
socket.on("error", (e) => done(e.code));
setTimeout(() => done("no answer"), Number(ms));`;

async function connectFrom(cluster: Cluster, host: string, address: string, port: number, ms = 1_500) {
  const h = cluster.network.hosts.get(host);
  if (!h) throw new Error(`no host ${host}`);
  return JSON.parse(await runIn(h, process.execPath, ["-e", CONNECT, address, String(port), String(ms)])) as { outcome: string; ms: number };
}

async function timedQuery(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query("select 1");
    const began = performance.now();
    await client.query("select 1");
    return performance.now() - began;
  } finally {
    await client.end();
  }
}

/**
 * The harness itself: hosts reach the run's PostgreSQL and nothing of the
 * root namespace's loopback; a partition makes packets vanish (a connect
 * neither succeeds nor is refused); the proxy delays; close() leaves no
 * namespace, link, process or directory; a stale run's leftovers are swept.
 */
describe("multi-host harness: namespaces, partitions, a delaying proxy, clean-up", () => {
  test("hosts are isolated, link down blackholes, the proxy adds its delay, nothing is left behind", { timeout: 60_000 }, async () => {
    // A stale run's namespace: no owner file, so the next run sweeps it.
    const stale = `${PREFIX}-dead00-x`;
    await ip("netns", "add", stale);
    const cluster = await startCluster();
    const { network } = cluster;
    let pgPid = -1;
    try {
      expect((await ip("netns", "list")).includes(stale)).toBe(false);
      pgPid = cluster.postgres.pid;
      const a = await cluster.addHost("a");
      const b = await cluster.addHost("b");
      expect(a.address).not.toBe(b.address);
      // Only loopback and the one veth end inside a host.
      expect((await runIn(a, "ip", ["-o", "link"])).trim().split("\n").map((l) => l.split(": ")[1]?.split("@")[0])).toEqual(["lo", "eth0"]);

      expect((await connectFrom(cluster, "a", network.gateway, 5432)).outcome).toBe("connected");
      // The machine's own PostgreSQL on the root namespace's loopback is out of reach: a host's loopback is its own.
      expect((await connectFrom(cluster, "a", "127.0.0.1", 5432)).outcome).toBe("ECONNREFUSED");

      await network.partition(a);
      const cut = await connectFrom(cluster, "a", network.gateway, 5432);
      // No refusal, no reset: the SYN vanishes.
      expect(cut.outcome).toBe("no answer");
      // The host keeps its address and route: nothing tells its sockets the link is gone.
      expect(await runIn(a, "ip", ["-4", "-o", "addr", "show", "eth0"])).toContain(a.address);
      await network.heal(a);
      expect((await connectFrom(cluster, "a", network.gateway, 5432, 5_000)).outcome).toBe("connected");

      const proxy = await cluster.startProxy(b, `${network.gateway}:5432`, { delayMs: 50 });
      const direct = await timedQuery(cluster.postgres.url);
      const delayed = await timedQuery(cluster.postgresThrough(proxy));
      // One round trip crosses the proxy twice (query, answer), each delayed 50 ms.
      expect(delayed).toBeGreaterThanOrEqual(100);
      printFigures("hosts", { hosts: network.hosts.size, direct_query_ms: direct.toFixed(1), proxied_query_ms: delayed.toFixed(1), proxy_delay_ms: 50 });
    } finally {
      await cluster.close();
    }
    const namespaces = await ip("netns", "list");
    expect(namespaces).not.toContain(network.runId);
    expect(await ip("-o", "link")).not.toContain(`${PREFIX}${network.runId}`);
    expect(existsSync(network.dir)).toBe(false);
    await expect(exec("kill", ["-0", String(pgPid)])).rejects.toThrow();
  });
});
