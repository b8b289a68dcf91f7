import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { Job } from "@ix/contracts";
import { insertJob, sampleRequest, test } from "@ix/testing";
import { createCallbackSender, createCallbackTargetPolicy, parseWebhookSecret } from "@ix/worker";
import { describe, expect, vi } from "vitest";
import { IxCallbackVerificationError, verifyCallback } from "../src/index.ts";

// verifyCallback against callbacks the worker's own sender signed and POSTed to a real receiver.

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** POSTs `job` to a receiver on a loopback port with the worker's callback sender, signed with `secret` (unsigned with null). */
async function deliver(db: Parameters<typeof insertJob>[0], secret: string | null): Promise<{ job: Job; received: Received }> {
  let received: Received | undefined;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received = { headers: req.headers, body: Buffer.concat(chunks) };
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as { port: number };
  let key: Buffer | null = null;
  if (secret !== null) {
    const parsed = parseWebhookSecret(secret);
    if (!parsed.ok) throw new Error(parsed.error);
    key = parsed.key;
  }
  const sender = createCallbackSender({ policy: createCallbackTargetPolicy(["127.0.0.1"]), timeoutMs: 10_000, secret: key });
  try {
    // Text the signature must cover byte for byte, multi-byte characters included.
    const job = await insertJob(db, {
      status: "done",
      request: sampleRequest({ context: { texts: ["Rechnung 42 – Summe 10,00 € ✓"] } }),
      callbackUrl: `http://127.0.0.1:${port}/ix-callback`,
    });
    const result = await sender.send(job);
    expect(result).toMatchObject({ ok: true, status: 204 });
    if (received === undefined) throw new Error("the receiver got nothing");
    return { job, received };
  } finally {
    await sender.close();
    await new Promise((resolve) => receiver.close(resolve));
  }
}

async function verificationFailure(run: () => unknown): Promise<string> {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(IxCallbackVerificationError);
    return (error as Error).message;
  }
  throw new Error("the callback verified");
}

describe("verifyCallback", () => {
  test("a real callback verifies, from Node's headers or fetch's Headers, raw bytes or text; the Job comes back", async ({
    database: { db },
  }) => {
    const { job, received } = await deliver(db, SECRET);
    expect(received.headers["webhook-id"]).toBe(job.job_id);
    expect(verifyCallback(received.headers, received.body, SECRET)).toEqual(JSON.parse(JSON.stringify(job)));
    const fetchHeaders = new Headers(Object.entries(received.headers).map(([name, value]) => [name, String(value)]));
    expect(verifyCallback(fetchHeaders, received.body.toString("utf8"), SECRET)).toMatchObject({ job_id: job.job_id, status: "done" });
  });

  test("a tampered body, another secret, a stale timestamp or no signature at all do not verify", async ({ database: { db } }) => {
    const { received } = await deliver(db, SECRET);
    const tampered = Buffer.from(received.body.toString("utf8").replace('"status":"done"', '"status":"error"'));
    expect(tampered.equals(received.body)).toBe(false);
    expect(await verificationFailure(() => verifyCallback(received.headers, tampered, SECRET))).toContain("No matching signature");

    const other = `whsec_${randomBytes(32).toString("base64")}`;
    expect(await verificationFailure(() => verifyCallback(received.headers, received.body, other))).toContain("No matching signature");

    // The same callback replayed six minutes later: outside the 5-minute window.
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 6 * 60_000);
      expect(await verificationFailure(() => verifyCallback(received.headers, received.body, SECRET))).toContain("too old");
    } finally {
      vi.useRealTimers();
    }

    const unsigned = await deliver(db, null);
    expect(unsigned.received.headers["webhook-signature"]).toBeUndefined();
    expect(await verificationFailure(() => verifyCallback(unsigned.received.headers, unsigned.received.body, SECRET))).toContain(
      "Missing required headers",
    );
  });

  test("a secret that is not a whsec_ key is a TypeError, not a failed verification", async ({ database: { db } }) => {
    const { received } = await deliver(db, SECRET);
    expect(() => verifyCallback(received.headers, received.body, SECRET.slice("whsec_".length))).toThrow(TypeError);
    expect(() => verifyCallback(received.headers, received.body, "whsec_!!not base64!!")).toThrow(/followed by base64/);
  });
});
