// The load generator host: submits `count` jobs over HTTP to the API hosts, round robin, as a
// well-behaved client behind a load balancer would: a 503 is retried after its Retry-After on the
// next API host, a connection error or a request past `timeoutMs` on the next host at once
// (a resubmission is idempotent: same ix_client_id and request_id). One line per accepted job,
// `{"accepted":<request_id>,"status":201,"api":…,"tries":…}`, then `{"loadgen":"done",…}`.
import { seededRandom } from "../figures.ts";

interface LoadOptions {
  apis: string[];
  count: number;
  clientId: string;
  /** request_id = `${prefix}-${i}`. */
  prefix: string;
  useCase: string;
  /** Each job's options.ms is drawn from [msMin, msMax] (seeded). */
  msMin: number;
  msMax: number;
  concurrency: number;
  callbackUrl?: string;
  /** Every job's `run_at` (ISO 8601): a backlog submitted now that no worker starts before then. */
  runAt?: string;
  seed?: number;
  timeoutMs?: number;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

const o = JSON.parse(process.argv[2] ?? "{}") as LoadOptions;
if (!Array.isArray(o.apis) || o.apis.length === 0) throw new Error("load-generator: `apis` must list at least one API URL");

/** Job i's draw in [0, 1), from the seed and i, so a job's duration does not depend on submission order. */
const random = (i: number) => seededRandom((o.seed ?? 1) * 100_003 + i)();

const began = Date.now();
let retried503 = 0;
let retriedError = 0;
let accepted = 0;
let next = 0;

async function submit(i: number): Promise<void> {
  const body = JSON.stringify({
    use_case: o.useCase,
    ix_client_id: o.clientId,
    request_id: `${o.prefix}-${i}`,
    context: { texts: [`job ${i}`] },
    options: { ms: o.msMin + Math.floor(random(i) * (o.msMax - o.msMin + 1)) },
    ...(o.callbackUrl ? { callback_url: o.callbackUrl } : {}),
    ...(o.runAt ? { run_at: o.runAt } : {}),
  });
  for (let tries = 1; tries <= 50; tries++) {
    const api = o.apis[(i + tries - 1) % o.apis.length] as string;
    try {
      const response = await fetch(`${api}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 5_000),
      });
      const text = await response.text();
      if (response.status === 200 || response.status === 201) {
        accepted++;
        process.stdout.write(`${JSON.stringify({ accepted: `${o.prefix}-${i}`, status: response.status, api, tries })}\n`);
        return;
      }
      if (response.status !== 503) throw new Error(`POST ${api}/jobs answered ${response.status}: ${text.slice(0, 300)}`);
      retried503++;
      await new Promise((r) => setTimeout(r, Number(response.headers.get("retry-after") ?? "1") * 1000));
    } catch (error) {
      if ((error as Error).message.startsWith("POST ")) throw error;
      retriedError++;
    }
  }
  throw new Error(`job ${o.prefix}-${i} was not accepted after 50 tries`);
}

await Promise.all(
  Array.from({ length: o.concurrency }, async () => {
    for (let i = next++; i < o.count; i = next++) await submit(i);
  }),
);
process.stdout.write(`${JSON.stringify({ loadgen: "done", accepted, retried_503: retried503, retried_error: retriedError, ms: Date.now() - began })}\n`);
