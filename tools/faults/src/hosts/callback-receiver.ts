// A callback receiver, run as a host of its own: answers every POST 204 and writes one line per
// delivery, `{"received":<webhook-id>,"result":<the delivered job's response.result>}`, so the test
// counts deliveries per job and sees whose result each carried.
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? "8080");
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    let result: unknown = null;
    try {
      result = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { response?: { result?: unknown } }).response?.result ?? null;
    } catch {
      result = "unparsable";
    }
    process.stdout.write(`${JSON.stringify({ received: req.headers["webhook-id"] ?? null, result })}\n`);
    res.writeHead(204).end();
  });
});
server.listen(port, "0.0.0.0", () => process.stdout.write(`${JSON.stringify({ receiver: "listening", port })}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
