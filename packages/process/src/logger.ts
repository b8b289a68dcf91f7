import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

/**
 * The one way `ix start`, `ix api` and `ix worker` make their logger: JSON
 * lines for machines, a readable line per record for a person at a terminal,
 * and in both every record names its component (see docs/ARCHITECTURE.md,
 * "Logs").
 */

/** IX_LOG_FORMAT's values; unset means "pretty at a terminal, else JSON". */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format an explicit setting asks for, else pretty only when stdout is a terminal (log shippers get JSON). */
export function resolveLogFormat(setting: LogFormat | undefined, stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return setting ?? (stdout.isTTY ? "pretty" : "json");
}

/** Where records go; stdout unless a test captures them. */
export interface LogOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  on?(event: "error", listener: (error: Error) => void): unknown;
}

export interface CreateLoggerOptions {
  level: string;
  /** IX_LOG_FORMAT; unset picks by whether `output` is a terminal. */
  format?: LogFormat | undefined;
  serializers?: LoggerOptions["serializers"];
  output?: LogOutput;
}

/**
 * A root logger without a component: callers bind theirs with
 * `.child({ component })`, "api", "worker" or "cli" (pino repeats a key
 * bound twice, so the root must not bind one that a child overrides, as
 * `ix start`'s do).
 */
export function createLogger({ level, format, serializers, output = process.stdout }: CreateLoggerOptions): Logger {
  const pretty = resolveLogFormat(format, output) === "pretty";
  const colour = pretty && output.isTTY === true && !process.env.NO_COLOR;
  const destination = pretty
    ? lineWriter(output, (line) => prettyLine(line, colour))
    : output === process.stdout
      ? stdoutJson()
      : lineWriter(output, (line) => line);
  return pino({ level, ...(serializers ? { serializers } : {}) }, destination);
}

/** pino's own stdout destination (buffered, flushed at exit), minus the crash when stdout is gone (see lineWriter). */
function stdoutJson(): DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false });
  destination.on("error", () => undefined);
  return destination;
}

/**
 * Writes each record synchronously, and stops writing once the output is
 * gone (a closed terminal gives EIO, a departed pipe reader EPIPE): losing
 * the log must not crash the shutdown that a terminal's SIGHUP begins.
 */
function lineWriter(output: LogOutput, render: (line: string) => string): DestinationStream {
  let gone = false;
  output.on?.("error", () => {
    gone = true;
  });
  return {
    write(line: string) {
      if (gone) return;
      try {
        output.write(render(line));
      } catch {
        gone = true;
      }
    },
  };
}

const LEVELS: Record<number, { name: string; colour: string }> = {
  10: { name: "TRACE", colour: "\x1b[90m" },
  20: { name: "DEBUG", colour: "\x1b[90m" },
  30: { name: "INFO", colour: "\x1b[32m" },
  40: { name: "WARN", colour: "\x1b[33m" },
  50: { name: "ERROR", colour: "\x1b[31m" },
  60: { name: "FATAL", colour: "\x1b[35m" },
};
const RESET = "\x1b[0m";
/** Fields every record has that a person at a terminal does not need on each line. */
const HIDDEN = new Set(["level", "time", "pid", "hostname", "component", "msg", "err"]);

interface LoggedErrorShape {
  type?: string;
  message?: string;
  code?: string;
  statement?: string;
  stack?: string;
  cause?: LoggedErrorShape;
}

/** `12:04:05.120 INFO  [api] message key=value`, then the error (its causes and stack) indented below. */
export function prettyLine(json: string, colour = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = LEVELS[record.level as number] ?? { name: String(record.level), colour: "" };
  const time = typeof record.time === "number" ? clockTime(record.time) : "";
  const levelText = level.name.padEnd(5);
  const parts = [time, colour ? `${level.colour}${levelText}${RESET}` : levelText];
  if (record.component !== undefined) parts.push(`[${String(record.component)}]`);
  if (record.msg !== undefined) parts.push(String(record.msg));
  for (const [key, value] of Object.entries(record)) {
    if (!HIDDEN.has(key) && value !== undefined) parts.push(`${key}=${fieldText(value)}`);
  }
  const lines = [parts.filter((part) => part !== "").join(" ")];
  if (record.err !== undefined) lines.push(...errorLines(record.err as LoggedErrorShape));
  return `${lines.join("\n")}\n`;
}

/** Local wall-clock time with milliseconds: the date is noise for someone watching. */
function clockTime(epochMillis: number): string {
  const at = new Date(epochMillis);
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

function fieldText(value: unknown): string {
  return typeof value === "string" && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

function errorLines(error: LoggedErrorShape, depth = 0): string[] {
  if (typeof error !== "object" || error === null) return [`    ${JSON.stringify(error)}`];
  const indent = "    ".repeat(depth + 1);
  const details = [error.code, error.statement].filter(Boolean).join(", ");
  const head = `${indent}${depth > 0 ? "caused by " : ""}${error.type ?? "Error"}: ${error.message ?? ""}${details ? ` (${details})` : ""}`;
  // The stack's first line repeats the message.
  const stack = (error.stack ?? "").split("\n").slice(1).map((line) => `${indent}  ${line.trim()}`);
  return [head, ...stack, ...(error.cause ? errorLines(error.cause, depth + 1) : [])];
}
