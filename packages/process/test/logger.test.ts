import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { createLogger, prettyLine, resolveLogFormat } from "../src/index.ts";

/** An output that keeps what is written, as a terminal (isTTY) or a pipe. */
function capture(isTTY: boolean) {
  const lines: string[] = [];
  const output = Object.assign(new EventEmitter(), { isTTY, write: (text: string) => lines.push(text) });
  return { output, lines };
}

describe("log format", () => {
  it("is JSON unless stdout is a terminal; IX_LOG_FORMAT overrides either way", () => {
    expect(resolveLogFormat(undefined, { isTTY: false })).toBe("json");
    expect(resolveLogFormat(undefined, {})).toBe("json");
    expect(resolveLogFormat(undefined, { isTTY: true })).toBe("pretty");
    expect(resolveLogFormat("json", { isTTY: true })).toBe("json");
    expect(resolveLogFormat("pretty", { isTTY: false })).toBe("pretty");
  });

  it("JSON lines carry the component a child binds, exactly once", () => {
    const { output, lines } = capture(false);
    const root = createLogger({ level: "info", output });
    root.child({ component: "api" }).info({ url: "http://127.0.0.1:8080" }, "ix api listening");
    root.child({ component: "worker" }).debug("below the level");
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.match(/"component"/g)).toHaveLength(1);
    expect(JSON.parse(line)).toMatchObject({ level: 30, component: "api", url: "http://127.0.0.1:8080", msg: "ix api listening" });
  });

  it("pretty lines are readable: time, level, [component], message, fields, and the error below", () => {
    const { output, lines } = capture(false);
    const log = createLogger({ level: "info", format: "pretty", output, serializers: { err: (e: Error) => ({ type: e.name, message: e.message, code: "ECONNREFUSED", stack: `${e.name}: ${e.message}\n    at here (x.ts:1:1)` }) } });
    log.child({ component: "worker" }).warn({ err: new Error("cannot connect to PostgreSQL at db:5432"), retryInMs: 100 }, "claiming: cannot connect to PostgreSQL at db:5432");
    expect(lines).toHaveLength(1);
    const [first, error, frame] = lines[0]!.trimEnd().split("\n");
    expect(first).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}\[worker\] claiming: cannot connect to PostgreSQL at db:5432 retryInMs=100$/);
    expect(error).toBe("    Error: cannot connect to PostgreSQL at db:5432 (ECONNREFUSED)");
    expect(frame).toBe("      at here (x.ts:1:1)");
    // Not JSON, and no colour codes when the output is not a terminal.
    expect(lines[0]!.startsWith("{")).toBe(false);
    expect(lines[0]).not.toContain("\x1b[");
  });

  it("pretty output to a terminal is coloured unless NO_COLOR is set", () => {
    const line = JSON.stringify({ level: 50, time: 0, component: "cli", msg: "boom" });
    expect(prettyLine(line, true)).toContain("\x1b[31mERROR\x1b[0m [cli] boom");
    const { output, lines } = capture(true);
    const previous = process.env.NO_COLOR;
    process.env.NO_COLOR = "1";
    try {
      createLogger({ level: "info", output }).info("plain");
    } finally {
      if (previous === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = previous;
    }
    expect(lines[0]).toMatch(/ INFO {2}plain\n$/);
  });

  it("fields that need quoting are quoted; nested values are JSON", () => {
    const text = prettyLine(JSON.stringify({ level: 30, time: 0, msg: "m", path: "/a b", n: 3, list: ["x"], plain: "ok" }));
    expect(text).toContain(' path="/a b" n=3 list=["x"] plain=ok\n');
  });

  it("an output that is gone (a closed terminal) ends logging instead of crashing the process", () => {
    const { output, lines } = capture(true);
    const log = createLogger({ level: "info", format: "pretty", output });
    log.info("before");
    output.emit("error", Object.assign(new Error("write EIO"), { code: "EIO" }));
    expect(() => log.info("after")).not.toThrow();
    expect(lines).toHaveLength(1);

    const throwing = { isTTY: false, write: () => { throw new Error("EPIPE"); } };
    const json = createLogger({ level: "info", output: throwing });
    expect(() => json.info("dropped")).not.toThrow();
  });
});
