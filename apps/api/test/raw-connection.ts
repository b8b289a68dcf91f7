import { connect, type Socket } from "node:net";

/**
 * A TCP connection that writes exactly what a test tells it, when it tells
 * it: slow headers, trickled bodies, nothing at all. Records what came back
 * and whether (and when) the server closed it.
 */
export interface RawConnection {
  readonly socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** The status code of the first response, once its status line has arrived. */
  status(): number | undefined;
  /** True once the server has closed (or reset) the connection. */
  closed(): boolean;
  /** Milliseconds from connecting until the close; undefined while open. */
  closedAfterMs(): number | undefined;
  write(text: string): void;
  /** Writes `text` one character every `everyMs`, until the text is sent or the connection closes. */
  trickle(text: string, everyMs: number): void;
  /** Closes from this side and stops trickling. */
  destroy(): void;
}

export async function openRaw(base: string): Promise<RawConnection> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  const openedAt = performance.now();
  let data = "";
  let closedAt: number | undefined;
  const timers = new Set<NodeJS.Timeout>();
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (data += chunk));
  // A reset after the server gave up on us is one of the expected endings.
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closedAt = performance.now();
    for (const timer of timers) clearInterval(timer);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    socket,
    received: () => data,
    status: () => {
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(data);
      return match ? Number(match[1]) : undefined;
    },
    closed: () => closedAt !== undefined,
    closedAfterMs: () => (closedAt === undefined ? undefined : Math.round(closedAt - openedAt)),
    write: (text) => {
      if (!socket.destroyed) socket.write(text);
    },
    trickle: (text, everyMs) => {
      let at = 0;
      const timer = setInterval(() => {
        if (socket.destroyed || at >= text.length) {
          clearInterval(timer);
          timers.delete(timer);
          return;
        }
        socket.write(text[at++]!);
      }, everyMs);
      timers.add(timer);
    },
    destroy: () => {
      for (const timer of timers) clearInterval(timer);
      socket.destroy();
    },
  };
}

/** The head of a POST /jobs whose body is announced but not (yet) sent. */
export function postHead(headers: Record<string, string>, contentLength: number): string {
  const lines = Object.entries({ host: "ix.test", "content-type": "application/json", ...headers, "content-length": String(contentLength) });
  return `POST /jobs HTTP/1.1\r\n${lines.map(([name, value]) => `${name}: ${value}`).join("\r\n")}\r\n\r\n`;
}
