import { context, trace } from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace";

// The one place an OpenTelemetry SDK is set up (docs/OPERATIONS.md, "Traces"). Library code uses
// @opentelemetry/api alone; a process entry (ix worker, ix start) calls `startTracing` once. With no
// OTEL_* configuration no SDK is loaded at all, and every span call is the API's no-op.

/** Where spans go: OTLP over HTTP, the console (for a quick look), or nowhere. */
export type TracesExporter = "otlp" | "console" | null;

const SUPPORTED = new Set(["otlp", "console", "none"]);

/** The exporter asked for, or the variable that asks for something ix does not ship, and why. */
export type TracesExporterSetting = { ok: true; exporter: TracesExporter } | { ok: false; variable: string; message: string };

/**
 * Which exporter the standard variables ask for, null for none: tracing is
 * off unless OTEL_TRACES_EXPORTER names one or an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and
 * OTEL_SDK_DISABLED=true turns it off whatever else is set. An exporter or
 * protocol ix does not ship is refused, naming the variable.
 */
export function tracesExporterFromEnv(env: Readonly<Record<string, string | undefined>>): TracesExporterSetting {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return { ok: true, exporter: null };
  const named = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  const unsupported = named.filter((name) => !SUPPORTED.has(name));
  if (unsupported.length > 0) {
    return {
      ok: false,
      variable: "OTEL_TRACES_EXPORTER",
      message: `ix ships the "otlp" (OTLP over HTTP) and "console" exporters, not ${unsupported.join(", ")}`,
    };
  }
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim();
  const endpoint = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
  const exporter: TracesExporter =
    named.length === 0 ? (endpoint ? "otlp" : null) : named.includes("none") ? null : named.includes("otlp") ? "otlp" : "console";
  if (exporter === "otlp" && protocol !== undefined && protocol !== "" && protocol !== "http/json") {
    const variable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL === undefined ? "OTEL_EXPORTER_OTLP_PROTOCOL" : "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    return { ok: false, variable, message: `ix exports OTLP as http/json (a collector's port 4318), not ${protocol}` };
  }
  return { ok: true, exporter };
}

export interface Tracing {
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is left and unregisters the SDK: span calls are no-ops again. */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. */
  serviceName: string;
  /** `tracesExporterFromEnv`, or an exporter object (tests: the SDK's InMemorySpanExporter). */
  exporter: TracesExporter | SpanExporter;
}

/**
 * Registers the tracing SDK for this process: an async-local-storage context
 * manager (so a pipeline's awaits stay in its run's span) and a tracer
 * provider batching spans to the exporter. The OTLP exporter reads its own
 * standard variables (endpoint, headers, timeout). Returns null, having loaded
 * nothing, when `exporter` is null.
 */
export async function startTracing({ serviceName, exporter }: StartTracingOptions): Promise<Tracing | null> {
  if (exporter === null) return null;
  // Loaded only here: a process without tracing never pays for the SDK.
  const [sdk, { AsyncLocalStorageContextManager }, resources] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/resources"),
  ]);
  const spanExporter: SpanExporter =
    exporter === "otlp"
      ? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter()
      : exporter === "console"
        ? new sdk.ConsoleSpanExporter()
        : exporter;
  const resource = resources
    .resourceFromAttributes({ "service.name": serviceName })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.TracerProvider({ resource, spanProcessors: [new sdk.BatchSpanProcessor({ exporter: spanExporter })] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  return {
    flush: () => provider.forceFlush(),
    async shutdown() {
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        context.disable();
      }
    },
  };
}
