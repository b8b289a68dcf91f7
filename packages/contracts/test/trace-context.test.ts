import { describe, expect, it } from "vitest";
import { formatTraceparent, parseTraceparent, traceContextFromHeaders } from "../src/index.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

describe("W3C trace context", () => {
  it("parses a version-00 traceparent and formats it back", () => {
    const parsed = parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-01`);
    expect(parsed).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 });
    expect(formatTraceparent(parsed!)).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);
  });

  it.each([
    ["uppercase hex", `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${SPAN_ID}-01`],
    ["an all-zero span id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
    ["version ff", `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ["a fifth field on version 00", `00-${TRACE_ID}-${SPAN_ID}-01-extra`],
    ["a short trace id", `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
    ["garbage", "not a traceparent"],
  ])("refuses %s", (_what, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });

  it("accepts a later version with more fields, keeping the four it knows", () => {
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-00-future`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0 });
  });

  it("reads headers: tracestate only beside a valid traceparent; repeated tracestate headers are one list", () => {
    const traceparent = `00-${TRACE_ID}-${SPAN_ID}-01`;
    expect(traceContextFromHeaders({ traceparent, tracestate: ["a=1", "b=2"] })).toEqual({ traceparent, tracestate: "a=1,b=2" });
    expect(traceContextFromHeaders({ traceparent })).toEqual({ traceparent, tracestate: null });
    expect(traceContextFromHeaders({ traceparent: "00-bad", tracestate: "a=1" })).toBeNull();
    expect(traceContextFromHeaders({ traceparent: [traceparent, traceparent] })).toBeNull();
    expect(traceContextFromHeaders({ traceparent, tracestate: `a=${"x".repeat(600)}` })).toEqual({ traceparent, tracestate: null });
    expect(traceContextFromHeaders({})).toBeNull();
  });
});
