/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
 * and `tracestate` headers a caller sends with `POST /jobs`, stored with the
 * job so its run and its callback join the caller's trace
 * (docs/OPERATIONS.md, "Traces"). Parsed here, without OpenTelemetry, because
 * the API stores and the worker forwards them whether or not an SDK is set up.
 */

/** A caller's trace context, as stored with a job: the header values, normalised. */
export interface TraceContext {
  traceparent: string;
  /** The vendor list that rides along; null when absent or unusable. */
  tracestate: string | null;
}

/** The parsed fields of a `traceparent`. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  /** The trace-flags byte; bit 0 is `sampled`. */
  flags: number;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);
/** The spec allows at most 32 list members; 512 characters is what it asks receivers to keep at least. */
const MAX_TRACESTATE_CHARS = 512;

/**
 * A `traceparent` value, or null when it is not one. Version 00 must have
 * exactly four fields; a later version may append fields, which are dropped
 * (the spec's forward compatibility); version ff and all-zero ids are invalid.
 */
export function parseTraceparent(value: string | undefined | null): TraceParent | null {
  if (typeof value !== "string") return null;
  const match = TRACEPARENT.exec(value.trim());
  if (match === null) return null;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined)) return null;
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return null;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}

/** The version-00 header for these fields. */
export function formatTraceparent({ traceId, spanId, flags }: TraceParent): string {
  return `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, "0")}`;
}

/**
 * The trace context of a request's headers, or null when it has no valid
 * `traceparent`. An invalid one is ignored rather than refused, as the spec
 * asks of every receiver: a proxy may add or mangle it, and the request is
 * still the caller's. `tracestate` is kept only beside a valid `traceparent`,
 * and only when short enough to store (a longer one is dropped whole, which the
 * spec allows).
 */
export function traceContextFromHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): TraceContext | null {
  // Several traceparent headers are invalid; several tracestate headers are one list.
  if (Array.isArray(headers.traceparent)) return null;
  const parent = parseTraceparent(headers.traceparent);
  if (parent === null) return null;
  const state = Array.isArray(headers.tracestate) ? headers.tracestate.join(",") : headers.tracestate;
  const tracestate = typeof state === "string" && state.trim() !== "" && state.length <= MAX_TRACESTATE_CHARS ? state.trim() : null;
  return { traceparent: formatTraceparent(parent), tracestate };
}
