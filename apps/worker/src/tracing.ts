import { formatTraceparent, type Job, parseTraceparent, type TraceContext } from "@ix/contracts";
import {
  type Context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanContext,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

// The worker's spans (docs/OPERATIONS.md, "Traces"), through @opentelemetry/api only: with no SDK
// registered (no OTEL_* configuration) every call here is the API's no-op, and a span carries its
// parent's context, so the traceparent handed on is the submitter's own.

/** The tracer is looked up per span: the process may register its SDK after this module is loaded. */
function tracer() {
  return trace.getTracer("ix-worker");
}

/** The submitter's span as the parent context of a job's spans; the root context when it sent none. */
export function submitterContext(stored: TraceContext | null): Context {
  const parent = parseTraceparent(stored?.traceparent);
  if (parent === null) return ROOT_CONTEXT;
  const spanContext: SpanContext = { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags, isRemote: true };
  if (stored?.tracestate) spanContext.traceState = createTraceState(stored.tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

/** The W3C headers of a span: what a pipeline or a callback receiver continues the trace from. Null when there is no trace. */
export function traceHeaders(span: Span): TraceContext | null {
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return null;
  const traceparent = formatTraceparent({ traceId: spanContext.traceId, spanId: spanContext.spanId, flags: spanContext.traceFlags });
  return { traceparent, tracestate: spanContext.traceState?.serialize() || null };
}

/**
 * How a run ended, as the span's `ix.outcome`: the run outcomes, why nothing was stored, or `failed`: the
 * worker itself failed unexpectedly while running or storing it (logged; the job row says what was stored).
 */
export type RunSpanOutcome = "done" | "error" | "cancelled" | "retried" | "fenced" | "lost" | "abandoned" | "failed";

export interface RunSpan {
  /** The run span's context: the pipeline runs inside it. */
  readonly context: Context;
  /** Its headers, handed to the pipeline (`PipelineContext.traceparent`); null when there is no trace. */
  readonly headers: TraceContext | null;
  /** Ends the span; once ended, later calls change nothing (a failure after a stored outcome keeps that outcome). */
  end(outcome: RunSpanOutcome, error?: string | null): void;
}

/** Starts the span `ix.run <use_case>` of one run of `job`, a child of the submitter's span. */
export function startRunSpan(job: Job, stored: TraceContext | null): RunSpan {
  const span = tracer().startSpan(
    `ix.run ${job.request.use_case}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        "ix.job_id": job.job_id,
        "ix.client_id": job.client_id,
        "ix.use_case": job.request.use_case,
        "ix.attempt": job.attempts + 1,
      },
    },
    submitterContext(stored),
  );
  let ended = false;
  return {
    context: trace.setSpan(ROOT_CONTEXT, span),
    headers: traceHeaders(span),
    end(outcome, error) {
      if (ended) return;
      ended = true;
      span.setAttribute("ix.outcome", outcome);
      if (outcome === "error" || outcome === "retried" || outcome === "failed") {
        span.setStatus({ code: SpanStatusCode.ERROR, ...(error ? { message: error } : {}) });
      }
      span.end();
    },
  };
}

export interface DeliverySpan {
  /** The headers the callback request carries: a traceparent of this delivery's span, in the submitter's trace. */
  readonly headers: TraceContext | null;
  end(outcome: "delivered" | "retry" | "failed", status: number | undefined): void;
}

/**
 * Starts the span `ix.callback` of one delivery attempt, a child of the
 * submitter's span (the run's span is not stored; both are in its trace).
 */
export function startDeliverySpan(job: Job, attempt: number, host: string, stored: TraceContext | null): DeliverySpan {
  const span = tracer().startSpan(
    "ix.callback",
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "ix.job_id": job.job_id,
        "ix.client_id": job.client_id,
        "ix.callback_attempt": attempt,
        "http.request.method": "POST",
        // The host only: the URL's path and query may carry the receiver's token.
        "server.address": host,
      },
    },
    submitterContext(stored),
  );
  return {
    headers: traceHeaders(span),
    end(outcome, status) {
      span.setAttribute("ix.callback_outcome", outcome);
      if (status !== undefined) span.setAttribute("http.response.status_code", status);
      if (outcome !== "delivered") span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}
