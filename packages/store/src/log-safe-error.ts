import { sqlState, unreachableDatabase } from "./errors.ts";

/**
 * What of an error may be written to a log. Database errors carry the client's
 * documents and secrets: Drizzle's message repeats every bound parameter
 * (`params: …`, request texts, callback URLs with their tokens) and PostgreSQL's
 * `detail` quotes key values. So a log keeps the error's kind, SQLSTATE, the
 * statement's verb and table, and messages with quoted values masked, and
 * follows `cause` a bounded number of steps (a cyclic or very deep error cannot
 * stall the logger). Used as pino's `err` serializer by every app.
 */
export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  statement?: string;
  constraint?: string;
  stack?: string;
  cause?: LoggedError;
}

const MAX_CAUSES = 5;
const MAX_MESSAGE = 500;

/** `update ix_jobs`, `insert into ix_jobs`: which statement, never its values. */
function statementOf(query: string): string {
  const match = /^\s*(?:with\b[\s\S]*?\)\s*)?(select|insert\s+into|update|delete\s+from)\s+"?([\w.]+)"?/i.exec(query);
  return match ? `${match[1]?.toLowerCase().replace(/\s+/g, " ")} ${match[2]}` : (query.trim().split(/\s+/)[0] ?? "").toLowerCase();
}

/** Quoted values in a message (`invalid input syntax for type uuid: "…"`) may be client data. */
export function maskQuoted(message: string): string {
  const masked = message.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/'(?:[^'\\]|\\.)*'/g, "'…'");
  return masked.length > MAX_MESSAGE ? `${masked.slice(0, MAX_MESSAGE)}…` : masked;
}

function field(error: object, key: string): string | undefined {
  const value = (error as Record<string, unknown>)[key];
  return typeof value === "string" ? value : undefined;
}

/**
 * The log-safe form of any thrown value. It never throws: an error whose
 * properties cannot even be read (a throwing getter, a revoked proxy) is
 * logged by whatever of its message and code could be read.
 */
export function logSafeError(error: unknown, depth = 0): LoggedError {
  try {
    // A statement that never ran because no connection opened is logged as the unreachable server it is:
    // an operating condition, not a bug, so without stacks.
    const unreachable = unreachableDatabase(error);
    return unreachable ? serialize(unreachable, depth, false) : serialize(error, depth);
  } catch {
    const logged: LoggedError = { type: "unserializable", message: "the error could not be serialised" };
    try {
      const message = (error as { message?: unknown }).message;
      if (typeof message === "string") logged.message = maskQuoted(message);
    } catch {
      // Not even the message: the placeholder stays.
    }
    try {
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string") logged.code = code.slice(0, 32);
    } catch {
      // No code either.
    }
    return logged;
  }
}

function serialize(error: unknown, depth: number, stacks = true): LoggedError {
  if (typeof error !== "object" || error === null) {
    return { type: typeof error, message: maskQuoted(String(error)) };
  }
  const type = error instanceof Error ? error.name : (error.constructor?.name ?? "Object");
  const query = field(error, "query");
  const logged: LoggedError = {
    type,
    // Drizzle's own message is "Failed query: <sql>\nparams: <values>": replaced, never logged.
    message: query !== undefined ? "database query failed" : maskQuoted(field(error, "message") ?? ""),
  };
  const code = field(error, "code") ?? sqlState(error);
  if (code !== undefined) logged.code = code;
  if (query !== undefined) logged.statement = statementOf(query);
  const constraint = field(error, "constraint");
  if (constraint !== undefined) logged.constraint = constraint;
  if (query === undefined && stacks) {
    const stack = field(error, "stack");
    if (stack !== undefined) logged.stack = maskQuoted(stack.split("\n").slice(0, 12).join("\n"));
  }
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && depth < MAX_CAUSES) logged.cause = serialize(cause, depth + 1, stacks);
  return logged;
}

/** How much of a free text (a job's error message, a receiver's answer) a log line quotes. */
const MAX_LOGGED_TEXT = 200;

/**
 * A free text for a log line, bounded: a job's error or a receiver's answer
 * may quote client data, so a log keeps only its start.
 */
export function logText(text: string | null | undefined, max = MAX_LOGGED_TEXT): string | null {
  if (text === null || text === undefined) return null;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * A URL for a log line: origin and path only. Query strings and fragments
 * carry tokens (`?token=…`), and user info carries passwords.
 */
export function logUrl(url: string | null | undefined): string | null {
  if (url === null || url === undefined) return null;
  if (!URL.canParse(url)) return "(not a URL)";
  const { origin, pathname } = new URL(url);
  return `${origin}${pathname}`;
}

/** A connection URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/** pino `serializers` for every app: `pino({ serializers: logSerializers })`. */
export const logSerializers = { err: (error: unknown) => logSafeError(error) };
