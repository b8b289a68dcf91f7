import { test, waitFor } from "@ix/testing";
import { describe, expect } from "vitest";
import type { Database } from "@ix/store";
import type { ApiApp, ApiConfig } from "../src";
import { bearer, body, KEY_A, KEYS, listeningApp } from "./fixtures";
import { openRaw, postHead, type RawConnection } from "./raw-connection";

/**
 * Clients that hold connections open (slowloris): each must be cut off by a
 * deadline, and answers that leave a body unread must close the connection.
 * Real sockets; the deadlines are configured short so the tests are quick,
 * and every wait below is a generous bound, not a timing assertion.
 */

const SHORT = { headersTimeoutMs: 500, requestTimeoutMs: 1_000, keepAliveTimeoutMs: 500 } satisfies Partial<ApiConfig>;

function listening(db: Database, config: Partial<ApiConfig>): Promise<{ app: ApiApp; base: string }> {
  return listeningApp(db, { apiKeys: KEYS, ...config });
}

const closedBy = (connection: RawConnection, what: string, timeoutMs = 15_000) =>
  waitFor(what, () => connection.closed(), { timeoutMs });

describe("slow and idle clients are disconnected", () => {
  test("a body trickled a byte at a time is answered 408 and closed at the request timeout", async ({ database: { db } }) => {
    const { app, base } = await listening(db, SHORT);
    const connections: RawConnection[] = [];
    try {
      const slow = await openRaw(base);
      connections.push(slow);
      slow.write(postHead(bearer(KEY_A), 100_000));
      slow.trickle("x".repeat(100_000), 100);
      await closedBy(slow, "the server to close a connection whose body never finishes");
      expect(slow.status()).toBe(408);
      expect(slow.received()).toMatch(/content-type: application\/problem\+json/i);
      expect(slow.received()).toContain('"type":"https://ix.dev/problems/request-timeout"');
    } finally {
      for (const c of connections) c.destroy();
      await app.close();
    }
  });

  test("headers trickled a byte at a time, and a connection that sends nothing, are closed at the headers timeout", async ({
    database: { db },
  }) => {
    const { app, base } = await listening(db, SHORT);
    const connections: RawConnection[] = [];
    try {
      const slowHeaders = await openRaw(base);
      const idle = await openRaw(base);
      connections.push(slowHeaders, idle);
      slowHeaders.trickle(`GET /healthz HTTP/1.1\r\nhost: ix.test\r\n${"x-pad: a\r\n".repeat(1_000)}\r\n`, 50);
      await closedBy(slowHeaders, "the server to close a connection whose headers never finish");
      await closedBy(idle, "the server to close a connection that never sent a byte");
      expect(slowHeaders.status()).toBe(408);
      // Nothing else is affected: a normal request on a fresh connection is served.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      for (const c of connections) c.destroy();
      await app.close();
    }
  });

  test("an idle keep-alive connection is closed after the keep-alive timeout", async ({ database: { db } }) => {
    const { app, base } = await listening(db, SHORT);
    const connection = await openRaw(base);
    try {
      connection.write("GET /healthz HTTP/1.1\r\nhost: ix.test\r\n\r\n");
      await closedBy(connection, "the server to close the idle keep-alive connection");
      expect(connection.status()).toBe(200);
    } finally {
      connection.destroy();
      await app.close();
    }
  });
});

describe("answers that leave the body unread close the connection", () => {
  const cases: Array<{ name: string; status: number; head: (contentLength: number) => string }> = [
    { name: "401 (no key)", status: 401, head: (n) => postHead({}, n) },
    { name: "401 (unknown key)", status: 401, head: (n) => postHead(bearer("not-a-configured-key-at-all-0000"), n) },
    { name: "413 (declared length over the limit)", status: 413, head: (n) => postHead(bearer(KEY_A), n) },
    { name: "415 (not JSON)", status: 415, head: (n) => postHead({ ...bearer(KEY_A), "content-type": "text/plain" }, n) },
  ];

  for (const { name, status, head } of cases) {
    test(`${name}: answered, then closed without waiting for the body`, async ({ database: { db } }) => {
      // Long deadlines: only the close-after-answer rule can end these connections within the wait.
      const { app, base } = await listening(db, { bodyLimitBytes: 50_000, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 });
      const connection = await openRaw(base);
      try {
        connection.write(head(100_000));
        connection.write('{"use_case":');
        await closedBy(connection, `the server to close the connection after its ${status}`, 10_000);
        expect(connection.status()).toBe(status);
        expect(connection.received()).toMatch(/\r\nconnection: close\r\n/i);
      } finally {
        connection.destroy();
        await app.close();
      }
    });
  }

  test("a keep-alive client still gets its 413 and can submit again on a new connection", async ({ database: { db } }) => {
    const { app, base } = await listening(db, { bodyLimitBytes: 4_096 });
    try {
      const tooBig = await fetch(`${base}/jobs`, {
        method: "POST",
        headers: { ...bearer(KEY_A), "content-type": "application/json" },
        body: JSON.stringify(body({ context: { texts: ["x".repeat(10_000)] } })),
      });
      expect(tooBig.status).toBe(413);
      expect(tooBig.headers.get("connection")).toBe("close");
      const fits = await fetch(`${base}/jobs`, {
        method: "POST",
        headers: { ...bearer(KEY_A), "content-type": "application/json" },
        body: JSON.stringify(body()),
      });
      expect(fits.status).toBe(201);
      expect(fits.headers.get("connection")).not.toBe("close");
    } finally {
      await app.close();
    }
  });
});

describe("the connection cap", () => {
  test("past the cap new connections are closed unanswered; a freed slot serves again", async ({ database: { db } }) => {
    const { app, base } = await listening(db, { maxConnections: 3, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 });
    const held: RawConnection[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await openRaw(base));
      await waitFor("the server to hold 3 connections", async () => {
        const count = await new Promise<number>((resolve, reject) =>
          app.server.getConnections((error, n) => (error ? reject(error) : resolve(n))),
        );
        return count === 3;
      });
      const refused = await openRaw(base);
      refused.write("GET /healthz HTTP/1.1\r\nhost: ix.test\r\n\r\n");
      await closedBy(refused, "the server to close the connection over the cap", 10_000);
      expect(refused.received()).toBe("");

      held.pop()?.destroy();
      await waitFor("a freed slot to serve /healthz", async () => (await fetch(`${base}/healthz`)).status === 200);
    } finally {
      for (const c of held) c.destroy();
      await app.close();
    }
  });
});
