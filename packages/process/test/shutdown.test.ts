import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { shutdownOnSignals } from "../src/index.ts";

function harness() {
  const source = new EventEmitter();
  const lines: string[] = [];
  const log = { info: (_: object, message: string) => lines.push(message), warn: (_: object, message: string) => lines.push(message) };
  const send = (signal: NodeJS.Signals) => source.emit(signal, signal);
  return { source, lines, log, send };
}

describe("shutdownOnSignals", () => {
  it("first signal stops gracefully, a second forces, a third is left to Node", async () => {
    const { source, lines, log, send } = harness();
    const calls: Array<{ signal: NodeJS.Signals; force: AbortSignal }> = [];
    let finish: () => void = () => {};
    const shutdown = shutdownOnSignals(
      (signal, force) => {
        calls.push({ signal, force });
        return new Promise<void>((resolve) => (finish = resolve));
      },
      { log, source },
    );
    expect(source.listenerCount("SIGTERM")).toBe(1);
    expect(source.listenerCount("SIGINT")).toBe(1);
    expect(source.listenerCount("SIGHUP")).toBe(1);

    send("SIGTERM");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.signal).toBe("SIGTERM");
    expect(calls[0]?.force.aborted).toBe(false);

    send("SIGINT");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.force.aborted).toBe(true);
    // Handlers gone: a third signal would get Node's default and end the process.
    expect(source.listenerCount("SIGTERM") + source.listenerCount("SIGINT") + source.listenerCount("SIGHUP")).toBe(0);
    expect(lines).toEqual(["shutdown requested", "second signal: no longer waiting for in-flight work"]);

    finish();
    await expect(shutdown.done).resolves.toBeUndefined();
  });

  it("a closed terminal's SIGHUP stops like SIGTERM", async () => {
    const { source, lines, log, send } = harness();
    const stopped: NodeJS.Signals[] = [];
    const shutdown = shutdownOnSignals(async (signal) => void stopped.push(signal), { log, source });
    send("SIGHUP");
    await shutdown.done;
    expect(stopped).toEqual(["SIGHUP"]);
    expect(lines).toEqual(["shutdown requested"]);
  });

  it("done rejects as stop does; dispose removes the handlers", async () => {
    const { source, log, send } = harness();
    const shutdown = shutdownOnSignals(async () => {
      throw new Error("pool would not close");
    }, { log, source });
    send("SIGINT");
    await expect(shutdown.done).rejects.toThrow("pool would not close");
    shutdown.dispose();
    shutdown.dispose();
    expect(source.listenerCount("SIGTERM") + source.listenerCount("SIGINT") + source.listenerCount("SIGHUP")).toBe(0);
  });
});
