import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/** What a callback receiver saw of one POST. */
export interface Received {
  headers: IncomingMessage["headers"];
  body: string;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Bytes this receiver's sockets wrote back (for the huge-body receivers: how much the worker let through). */
  bytesWritten(): number;
  close(): Promise<void>;
}

type Respond = (res: ServerResponse, n: number) => void;

/** A real HTTP receiver on 127.0.0.1; `respond` gets the 1-based request number and may answer or not. */
export async function startReceiver(respond: Respond): Promise<Receiver> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  let written = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      respond(res, received.length);
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => {
      written += socket.bytesWritten;
      sockets.delete(socket);
    });
  });
  return listen(server, received, () => written + [...sockets].reduce((sum, s) => sum + s.bytesWritten, 0), () => {
    server.closeAllConnections();
  });
}

async function listen(
  server: { listen(port: number, host: string, cb: () => void): unknown; address(): AddressInfo | string | null; close(cb: () => void): unknown },
  received: Received[],
  bytesWritten: () => number,
  dropConnections: () => void,
): Promise<Receiver> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    bytesWritten,
    close: () =>
      new Promise<void>((resolve) => {
        dropConnections();
        server.close(() => resolve());
      }),
  };
}

const MIB = 1_048_576;

/** Answers `status` with a `sizeBytes` body, written as fast as the reader takes it. */
export function hugeBody(status: number, sizeBytes: number): Respond {
  const chunk = Buffer.alloc(MIB, "a");
  return (res) => {
    res.writeHead(status, { "content-type": "text/plain", "content-length": String(sizeBytes) });
    let sent = 0;
    const pump = () => {
      while (sent < sizeBytes && !res.destroyed) {
        const piece = sent + chunk.length <= sizeBytes ? chunk : chunk.subarray(0, sizeBytes - sent);
        sent += piece.length;
        if (!res.write(piece)) return void res.once("drain", pump);
      }
      if (!res.destroyed) res.end();
    };
    res.on("error", () => undefined); // the worker hanging up mid-body is the point
    pump();
  };
}

/** Answers `status` at once, then drips the body one byte every `everyMs`, forever. */
export function trickleBody(status: number, everyMs: number): Respond {
  return (res) => {
    res.writeHead(status, { "content-type": "text/plain" });
    res.flushHeaders();
    const timer = setInterval(() => {
      if (res.destroyed) clearInterval(timer);
      else res.write("x");
    }, everyMs);
    res.on("close", () => clearInterval(timer));
  };
}

/**
 * A raw TCP receiver that drips a response's status line and headers one byte
 * every `everyMs` and never finishes them: the slowest possible answer.
 * `received` holds the request line of each request that arrived.
 */
export async function startHeaderTrickler(everyMs: number): Promise<Receiver & { connections(): number }> {
  const received: Received[] = [];
  const head = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-padding: ${"p".repeat(10_000)}`);
  const sockets = new Set<Socket>();
  let connections = 0;
  let written = 0;
  const server = createTcpServer((socket) => {
    connections++;
    sockets.add(socket);
    let request = "";
    let counted = false;
    // Counted once the request line and headers are in: a client may open connections it never sends on (undici 7 did).
    socket.on("data", (chunk: Buffer) => {
      request += chunk.toString("latin1");
      if (!counted && request.includes("\r\n\r\n")) {
        counted = true;
        received.push({ headers: {}, body: request.slice(0, request.indexOf("\r\n")) });
      }
    });
    let at = 0;
    const timer = setInterval(() => {
      if (at < head.length && socket.writable) socket.write(head.subarray(at, ++at));
    }, everyMs);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearInterval(timer);
      written += socket.bytesWritten;
      sockets.delete(socket);
    });
  });
  const receiver = await listen(server, received, () => written, () => {
    for (const s of sockets) s.destroy();
  });
  return { ...receiver, connections: () => connections };
}
