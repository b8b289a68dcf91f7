import type { Database } from "@ix/store";
import type { Logger } from "pino";
import { pause } from "./pause";

export interface PendingListener {
  close(): Promise<void>;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/**
 * Holds one dedicated connection LISTENing on `channel` (spec §5). LISTEN is
 * per session, so the connection never goes back to the pool: when it dies
 * (killed backend, server restart) it is destroyed and a new one is opened
 * with backoff. `onListening` runs after every (re)connect, since
 * notifications sent while no one listened are lost and the caller must look
 * for work itself.
 */
export function listenForPending({
  pool,
  channel,
  onNotify,
  onListening,
  log,
}: {
  pool: Database["$client"];
  channel: string;
  onNotify: () => void;
  onListening: () => void;
  log: Logger;
}): PendingListener {
  const closing = new AbortController();
  let current: { release(error?: Error): void } | null = null;

  async function session(): Promise<void> {
    const client = await pool.connect();
    let released = false;
    const release = (error?: Error) => {
      if (released) return;
      released = true;
      // Destroy, never return to the pool: a pooled connection must not keep LISTENing.
      client.release(error ?? true);
    };
    const lost = new Promise<Error>((resolve) => {
      client.on("error", resolve);
      client.once("end", () => resolve(new Error("LISTEN connection ended")));
    });
    current = { release };
    try {
      if (closing.signal.aborted) return;
      client.on("notification", onNotify);
      // `channel` is our own constant identifier, never input.
      await client.query(`listen ${channel}`);
      log.debug({ channel }, "listening for pending jobs");
      onListening();
      const error = await Promise.race([lost, new Promise<null>((resolve) => closing.signal.addEventListener("abort", () => resolve(null)))]);
      if (error !== null) throw error;
    } finally {
      current = null;
      release();
    }
  }

  const loop = (async () => {
    let delay = FIRST_RETRY_MS;
    while (!closing.signal.aborted) {
      const since = Date.now();
      try {
        await session();
      } catch (error) {
        if (closing.signal.aborted) break;
        // A session that lasted a while was healthy: start the backoff over.
        if (Date.now() - since > MAX_RETRY_MS) delay = FIRST_RETRY_MS;
        log.warn({ err: error, retryInMs: delay }, "LISTEN connection lost; reconnecting (the poll keeps work moving meanwhile)");
        await pause(delay, closing.signal);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    }
  })();

  return {
    async close() {
      closing.abort();
      current?.release();
      await loop;
    },
  };
}
