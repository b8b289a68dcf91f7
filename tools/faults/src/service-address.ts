import { once } from "node:events";
import { type AddressInfo, createConnection, createServer, type Socket } from "node:net";

/**
 * The address ix connects to, in front of whichever server is the primary now:
 * what a managed PostgreSQL's endpoint or a virtual IP is. A TCP forwarder on
 * 127.0.0.1 that passes bytes unchanged to its target. `moveTo` does what a
 * failover does to the address. Every connection to the old server is
 * dropped (a moved VIP leaves those sockets dead, and a managed service
 * closes them), and new ones reach the new server.
 */
export interface ServiceAddress {
  readonly port: number;
  /** A postgres:// URL for `database` through this address. */
  url(database: string): string;
  /** Drops every forwarded connection and sends new ones to `port` on 127.0.0.1. */
  moveTo(port: number): void;
  /** Connections forwarded now. */
  connections(): number;
  close(): Promise<void>;
}

export async function startServiceAddress(targetPort: number): Promise<ServiceAddress> {
  let target = targetPort;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: target, noDelay: true });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    // Either side ending or failing (the server refusing, crashing) ends the other at once, as a dead server would.
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on("error", drop);
      socket.on("close", drop);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const dropAll = () => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    moveTo(next) {
      target = next;
      dropAll();
    },
    connections: () => pairs.size,
    async close() {
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
