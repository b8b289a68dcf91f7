import { Agent, request as httpRequest } from "node:http";

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Send the body with chunked transfer encoding, without a content-length. */
  chunked?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A plain node:http client over a real socket, so hostile requests reach the
 * server exactly as written: any content type, any bytes, chunked or not.
 */
export function createHttpClient(baseUrl: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const base = new URL(baseUrl);
  function send(req: RawRequest): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, "utf8");
      const headers: Record<string, string> = { ...req.headers };
      if (body !== undefined && !req.chunked) headers["content-length"] = String(body.length);
      const outgoing = httpRequest(
        { agent, host: base.hostname, port: base.port, method: req.method, path: req.path, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      outgoing.on("error", reject);
      if (body !== undefined && req.chunked) {
        // Several chunks, so the server cannot know the size up front.
        for (let at = 0; at < body.length; at += 4_096) outgoing.write(body.subarray(at, at + 4_096));
        outgoing.end();
      } else {
        outgoing.end(body);
      }
    });
  }
  return { send, close: () => agent.destroy() };
}
