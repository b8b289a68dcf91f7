import { fileURLToPath } from "node:url";
import { connect, type Database, migrateUp } from "@ix/store";
import { type IxProcess, killAll, type LineProcess, spawnIx, spawnNodeScript } from "../processes.ts";
import { createNetwork, type Host, type Network } from "./netns.ts";
import { killStalePostgres, type PostgresHost, startPostgresHost } from "./postgres-host.ts";

const program = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));

/** The key every API host accepts (IX_API_KEYS), for client `CLIENT_ID`: an API on a non-loopback address must have keys. */
export const CLIENT_ID = "hosts";
export const API_KEY = "ix-hosts-test-key-0123456789";

export interface ApiHost {
  readonly host: Host;
  readonly process: IxProcess;
  /** http://<host address>:8080 */
  readonly url: string;
}

export interface ProxyHost {
  readonly host: Host;
  readonly process: LineProcess;
  /** `host:port` the proxy listens on. */
  readonly address: string;
  readonly port: number;
}

export interface ReceiverHost {
  readonly host: Host;
  readonly process: LineProcess;
  readonly url: string;
  /** Deliveries so far, per webhook-id (the job id). */
  deliveries(): Map<string, number>;
}

export interface LoadSummary {
  accepted: number;
  retried_503: number;
  retried_error: number;
  ms: number;
}

export interface LoadOptions {
  count: number;
  prefix: string;
  useCase?: string;
  msMin?: number;
  msMax?: number;
  concurrency?: number;
  callbackUrl?: string;
  /** Every job's `run_at`: a backlog that waits until the caller releases it. */
  runAt?: string;
  seed?: number;
}

/**
 * The multi-host harness: a run's network (netns.ts) with its own PostgreSQL
 * 15 cluster on the bridge address, and hosts started from the real entry
 * points: `ix api` and `ix worker` (ix-process.ts, as the other faults start
 * them), a delaying TCP proxy, a callback receiver and a load generator, each
 * in its own namespace. close() removes everything, also after a failure;
 * a run killed before its close is swept by the next one.
 */
export interface Cluster {
  readonly network: Network;
  readonly postgres: PostgresHost;
  /** The test's own connection to the run's PostgreSQL (through the bridge). */
  readonly db: Database;
  addHost(name: string): Promise<Host>;
  /** `ix api` on `host`, port 8080, with IX_API_KEYS set and callbacks to the run's /24 allowed; `postgresUrl` (e.g. through a proxy host) defaults to the cluster's. */
  startApi(host: Host, env?: Record<string, string>, options?: { postgresUrl?: string }): Promise<ApiHost>;
  /** `ix worker` on `host`; callbacks to the run's /24 are allowed. */
  startWorker(host: Host, env?: Record<string, string>, options?: { postgresUrl?: string }): IxProcess;
  /** A delaying TCP proxy on `host`:`port` in front of `target` (host:port). */
  startProxy(host: Host, target: string, options?: { port?: number; delayMs?: number; jitterMs?: number; loss?: number; lossPenaltyMs?: number }): Promise<ProxyHost>;
  /** A PostgreSQL URL of the cluster's server reached through `proxy`. */
  postgresThrough(proxy: ProxyHost): string;
  startReceiver(host: Host): Promise<ReceiverHost>;
  /** Runs the load generator on `host` against `apis` until every job is accepted; resolves with its summary. */
  runLoad(host: Host, apis: ApiHost[], options: LoadOptions): Promise<LoadSummary>;
  close(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const network = await createNetwork({ beforeSweep: killStalePostgres });
  const processes: LineProcess[] = [];
  let postgres: PostgresHost | undefined;
  let db: ReturnType<typeof connect> | undefined;
  const close = async () => {
    killAll(processes);
    await Promise.all(processes.map((p) => p.exited));
    await db?.close().catch(() => undefined);
    await postgres?.stop();
    await network.close();
  };
  try {
    postgres = await startPostgresHost({ runDir: network.dir, address: network.gateway, subnet: network.subnet });
    db = connect(postgres.url, { max: 4, applicationName: "ix-hosts-test", onIdleError: () => undefined });
    await migrateUp(db);
  } catch (error) {
    await close();
    throw error;
  }
  const pgUrl = postgres.url;
  const track = <T extends LineProcess>(p: T): T => {
    processes.push(p);
    return p;
  };

  return {
    network,
    postgres,
    db,
    addHost: (name) => network.addHost(name),
    async startApi(host, env = {}, { postgresUrl = pgUrl } = {}) {
      const api = track(
        spawnIx(
          "api",
          { IX_POSTGRES_URL: postgresUrl, IX_API_HOST: host.address, IX_API_PORT: "8080", IX_API_KEYS: `${CLIENT_ID}:${API_KEY}`, IX_CALLBACK_ALLOWED_HOSTS: network.subnet, IX_LOG_LEVEL: "info", ...env },
          { netns: host.ns },
        ),
      );
      await api.waitForLine("listening", (line) => line.fault === "listening");
      return { host, process: api, url: `http://${host.address}:8080` };
    },
    startWorker: (host, env = {}, { postgresUrl = pgUrl } = {}) =>
      track(spawnIx("worker", { IX_POSTGRES_URL: postgresUrl, IX_CALLBACK_ALLOWED_HOSTS: network.subnet, IX_LOG_LEVEL: "info", ...env }, { netns: host.ns })),
    async startProxy(host, target, { port = 6432, ...delays } = {}) {
      const [targetHost, targetPort] = target.split(":");
      const proxy = track(
        spawnNodeScript("proxy", program("delay-proxy.ts"), [JSON.stringify({ listenPort: port, targetHost, targetPort: Number(targetPort), ...delays })], {}, { netns: host.ns }),
      );
      await proxy.waitForLine("listening", (line) => line.proxy === "listening");
      return { host, process: proxy, address: `${host.address}:${port}`, port };
    },
    postgresThrough(proxy) {
      const url = new URL(pgUrl);
      url.host = proxy.address;
      return url.href;
    },
    async startReceiver(host) {
      const receiver = track(spawnNodeScript("receiver", program("callback-receiver.ts"), ["8080"], {}, { netns: host.ns }));
      await receiver.waitForLine("listening", (line) => line.receiver === "listening");
      return {
        host,
        process: receiver,
        url: `http://${host.address}:8080/hook`,
        deliveries() {
          const counts = new Map<string, number>();
          for (const line of receiver.lines) if (typeof line.received === "string") counts.set(line.received, (counts.get(line.received) ?? 0) + 1);
          return counts;
        },
      };
    },
    async runLoad(host, apis, options) {
      const load = track(
        spawnNodeScript(
          "loadgen",
          program("load-generator.ts"),
          [
            JSON.stringify({
              apis: apis.map((a) => a.url),
              clientId: CLIENT_ID,
              apiKey: API_KEY,
              useCase: "recorded",
              msMin: 20,
              msMax: 200,
              concurrency: 8,
              ...options,
            }),
          ],
          {},
          { netns: host.ns },
        ),
      );
      const { code, signal } = await load.exited;
      const summary = load.lines.find((line) => line.loadgen === "done");
      if (code !== 0 || !summary) throw new Error(`the load generator failed (${code ?? signal}): ${load.stderr()}`);
      return summary as unknown as LoadSummary;
    },
    close,
  };
}
