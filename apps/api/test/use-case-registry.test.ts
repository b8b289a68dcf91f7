import { describe, expect, it } from "vitest";
import { UseCaseRegistry } from "../src/use-case-registry";

/** A lookup answering from a list the test changes, counting its calls; `gate` holds answers back until released. */
function fakeLookup(initial: string[]) {
  const state = { known: initial, calls: 0, gate: undefined as Promise<void> | undefined, fail: undefined as Error | undefined };
  const lookup = async () => {
    state.calls++;
    const answer = [...state.known];
    const failure = state.fail;
    await state.gate;
    if (failure) throw failure;
    return answer;
  };
  return { state, lookup };
}

function clock() {
  const time = { now: 0 };
  return { time, now: () => time.now };
}

describe("UseCaseRegistry", () => {
  it("answers from one lookup while it is fresh, and asks again once it is not", async () => {
    const { state, lookup } = fakeLookup(["ocr", "llm"]);
    const { time, now } = clock();
    const registry = new UseCaseRegistry(lookup, { cacheMs: 5_000, now });
    expect(await registry.check(["ocr"])).toEqual({ unknown: [], known: ["ocr", "llm"] });
    time.now = 4_999;
    expect(await registry.check(["llm", "ocr"])).toEqual({ unknown: [], known: ["ocr", "llm"] });
    expect(state.calls).toBe(1);

    state.known = ["llm"];
    time.now = 5_000;
    // Stale: asked again, and a use_case whose workers left is unknown (after one more look).
    expect(await registry.check(["ocr"])).toEqual({ unknown: ["ocr"], known: ["llm"] });
    expect(state.calls).toBe(2);
  });

  it("looks once more before calling a use_case unknown, so a worker registered a moment ago is seen", async () => {
    const { state, lookup } = fakeLookup(["ocr"]);
    const registry = new UseCaseRegistry(lookup, { now: () => 0 });
    expect(await registry.check(["ocr"])).toEqual({ unknown: [], known: ["ocr"] });
    state.known = ["ocr", "translate"];
    expect(await registry.check(["translate", "ocr"])).toEqual({ unknown: [], known: ["ocr", "translate"] });
    expect(state.calls).toBe(2);

    // Still unknown after the second look: named once, with every known use_case.
    expect(await registry.check(["nope", "ocr", "nope"])).toEqual({ unknown: ["nope"], known: ["ocr", "translate"] });
    expect(state.calls).toBe(3);
  });

  it("a check whose own lookup missed does not look again: that lookup is as new as the check", async () => {
    const { state, lookup } = fakeLookup([]);
    const registry = new UseCaseRegistry(lookup, { now: () => 0 });
    expect(await registry.check(["ocr"])).toEqual({ unknown: ["ocr"], known: [] });
    expect(state.calls).toBe(1);
  });

  it("concurrent misses share one more lookup instead of one each", async () => {
    const { state, lookup } = fakeLookup(["ocr"]);
    const registry = new UseCaseRegistry(lookup, { now: () => 0 });
    await registry.check(["ocr"]);
    const checks = Array.from({ length: 20 }, (_, i) => registry.check([`unknown-${i % 3}`]));
    const results = await Promise.all(checks);
    expect(results.map((r) => r.unknown)).toEqual(Array.from({ length: 20 }, (_, i) => [`unknown-${i % 3}`]));
    expect(state.calls).toBe(2);
  });

  it("a miss does not trust a lookup that was sent before the check began", async () => {
    const { state, lookup } = fakeLookup(["ocr"]);
    const registry = new UseCaseRegistry(lookup, { now: () => 0 });
    let release!: () => void;
    state.gate = new Promise((resolve) => (release = resolve));
    const early = registry.check(["ocr"]); // sends a lookup that has read ["ocr"]
    state.known = ["ocr", "llm"]; // a worker registers after that lookup began
    state.gate = undefined;
    const late = registry.check(["llm"]); // reuses the in-flight lookup, misses, asks again
    release();
    expect(await early).toEqual({ unknown: [], known: ["ocr"] });
    expect(await late).toEqual({ unknown: [], known: ["ocr", "llm"] });
    expect(state.calls).toBe(2);
  });

  it("a failed lookup rejects the checks waiting on it and is not cached", async () => {
    const { state, lookup } = fakeLookup(["ocr"]);
    const registry = new UseCaseRegistry(lookup, { now: () => 0 });
    state.fail = Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" });
    await expect(registry.check(["ocr"])).rejects.toThrow("connection refused");
    state.fail = undefined;
    expect(await registry.check(["ocr"])).toEqual({ unknown: [], known: ["ocr"] });
    expect(state.calls).toBe(2);
  });
});
