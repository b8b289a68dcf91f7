import { describe, expect, it } from "vitest";
import { tracesExporterFromEnv } from "../src/index.ts";

describe("tracesExporterFromEnv", () => {
  it("is off without OTEL_* settings, so no SDK is loaded", () => {
    expect(tracesExporterFromEnv({})).toEqual({ ok: true, exporter: null });
  });

  it("exports OTLP when an endpoint is set or otlp is named, and to the console when asked", () => {
    expect(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toEqual({ ok: true, exporter: "otlp" });
    expect(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" })).toEqual({ ok: true, exporter: "otlp" });
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "otlp" })).toEqual({ ok: true, exporter: "otlp" });
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "console" })).toEqual({ ok: true, exporter: "console" });
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toEqual({ ok: true, exporter: "otlp" });
  });

  it("is off when told: none, or OTEL_SDK_DISABLED", () => {
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toEqual({ ok: true, exporter: null });
    expect(tracesExporterFromEnv({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" })).toEqual({ ok: true, exporter: null });
  });

  it("names the variable that asks for what ix does not ship", () => {
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "zipkin" })).toMatchObject({ ok: false, variable: "OTEL_TRACES_EXPORTER" });
    expect(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toMatchObject({
      ok: false,
      variable: "OTEL_EXPORTER_OTLP_PROTOCOL",
      message: expect.stringContaining("http/json"),
    });
  });
});
