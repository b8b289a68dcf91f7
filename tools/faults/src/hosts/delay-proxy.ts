// A delaying TCP proxy, run as a host of its own (`ip netns exec <ns> node … delay-proxy.ts '<json>'`):
// this kernel has no netem qdisc, so latency and loss between hosts are made here, in user space.
// Every chunk is forwarded `delayMs` (+ up to `jitterMs`) after it arrived, in order; with
// probability `loss` a chunk is held a further `lossPenaltyMs`, as a lost segment's retransmission
// holds back everything behind it. Writes `{"proxy":"listening","port":…}` once it accepts.
import { createConnection, createServer, type Socket } from "node:net";

interface ProxyOptions {
  listenPort: number;
  targetHost: string;
  targetPort: number;
  delayMs?: number;
  jitterMs?: number;
  loss?: number;
  lossPenaltyMs?: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ProxyOptions;
const { delayMs = 0, jitterMs = 0, loss = 0, lossPenaltyMs = 200 } = options;

/** Forwards `from` to `to` with the delay, keeping order: a chunk never overtakes the one before it. */
function pipeDelayed(from: Socket, to: Socket): void {
  let last = 0;
  from.on("data", (chunk: Buffer) => {
    let at = Date.now() + delayMs + Math.random() * jitterMs;
    if (Math.random() < loss) at += lossPenaltyMs;
    at = Math.max(at, last);
    last = at;
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, at - Date.now());
  });
  from.on("end", () => setTimeout(() => to.end(), Math.max(0, last - Date.now())));
}

const server = createServer((client) => {
  const upstream = createConnection({ host: options.targetHost, port: options.targetPort });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", close);
  upstream.on("close", close);
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
});
server.listen(options.listenPort, "0.0.0.0", () => {
  process.stdout.write(`${JSON.stringify({ proxy: "listening", port: options.listenPort, delayMs, jitterMs, loss })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
