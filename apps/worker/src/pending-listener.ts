import type { Database } from "@ix/store";
import type { Logger } from "pino";
import { retryWhileDbAway } from "./db-retry.ts";

export interface PendingListener {
  close(): Promise<void>;
}

/**
 * Holds one dedicated connection LISTENing on every channel in `channels`
 * (pending jobs, cancels), so a NOTIFY reaches the worker at once. LISTEN is per session, so the connection never goes back to
 * the pool: when it dies (killed backend, server restart) it is destroyed and
 * a new one is opened with the database backoff. `onListening` runs after
 * every (re)connect, since notifications sent while no one listened are lost
 * and the caller must look for work itself.
 */
export function listenForPending({
  pool,
  channels,
  onListening,
  log,
}: {
  pool: Database["$client"];
  /** Channel → what a notification on it does, given its payload. */
  channels: Record<string, (payload: string | undefined) => void>;
  onListening: () => void;
  log: Logger;
}): PendingListener {
  const onNotify = (message: { channel: string; payload?: string | undefined }) => channels[message.channel]?.(message.payload);
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
      // The channels are our own constant identifiers, never input.
      for (const channel of Object.keys(channels)) await client.query(`listen ${channel}`);
      log.debug({ channels: Object.keys(channels) }, "listening for pending jobs and cancels");
      onListening();
      const error = await Promise.race([lost, new Promise<null>((resolve) => closing.signal.addEventListener("abort", () => resolve(null)))]);
      if (error !== null) throw error;
    } finally {
      current = null;
      release();
    }
  }

  // A session ends normally only on close; a lost one is retried for as long as the listener is open.
  const loop = retryWhileDbAway(session, {
    signal: closing.signal,
    onFailure: (error, retryInMs) =>
      log.warn({ err: error, retryInMs }, "LISTEN connection lost; reconnecting (the poll keeps work moving meanwhile)"),
  }).catch((error: unknown) => log.debug({ err: error }, "LISTEN connection closed while reconnecting"));

  return {
    async close() {
      closing.abort();
      current?.release();
      await loop;
    },
  };
}
