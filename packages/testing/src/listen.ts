import { randomUUID } from "node:crypto";
import pg from "pg";

export interface HeardNotification {
  channel: string;
  /** "" when the NOTIFY carried none. */
  payload: string;
}

export interface Listening {
  /** The notifications heard so far, in the order they arrived. */
  readonly heard: readonly HeardNotification[];
  /**
   * Resolves once every notification committed before this call has arrived: it notifies the channel
   * from the listening connection and waits for that marker, which PostgreSQL delivers after everything
   * committed earlier (the queue is in commit order). The marker is not added to `heard`.
   */
  caughtUp(options?: { timeoutMs?: number }): Promise<void>;
  /** Stops listening and closes the connection. */
  close(): Promise<void>;
}

/**
 * LISTENs on `channel` on a connection of its own to `url` and collects what it hears, for tests
 * about who wakes whom (jobs.PENDING_CHANNEL, jobs.CANCEL_CHANNEL). Close it in a `finally`.
 */
export async function listenFor(url: string, channel: string): Promise<Listening> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const heard: HeardNotification[] = [];
  const markers = new Map<string, () => void>();
  client.on("notification", (n) => {
    if (n.channel !== channel) return;
    const marker = markers.get(n.payload ?? "");
    if (marker) marker();
    else heard.push({ channel: n.channel, payload: n.payload ?? "" });
  });
  try {
    await client.query(`listen ${client.escapeIdentifier(channel)}`);
  } catch (error) {
    await client.end();
    throw error;
  }
  return {
    heard,
    async caughtUp({ timeoutMs = 10_000 } = {}) {
      const marker = `ix-testing-caught-up-${randomUUID()}`;
      let timer: NodeJS.Timeout | undefined;
      const arrived = new Promise<void>((resolve, reject) => {
        markers.set(marker, resolve);
        timer = setTimeout(() => reject(new Error(`no notification on ${channel} came back within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await client.query("select pg_notify($1, $2)", [channel, marker]);
        await arrived;
      } finally {
        clearTimeout(timer);
        markers.delete(marker);
      }
    },
    close: () => client.end(),
  };
}
