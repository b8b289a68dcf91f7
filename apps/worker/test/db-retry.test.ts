import { describe, expect, it } from "vitest";
import { retryWhileDbAway } from "../src/db-retry.ts";

describe("retryWhileDbAway", () => {
  it("waits 100 ms, then doubling, reporting each failure, until the attempt succeeds", async () => {
    const waits: number[] = [];
    let calls = 0;
    const result = await retryWhileDbAway(
      async () => {
        calls++;
        if (calls <= 2) throw new Error(`down ${calls}`);
        return "stored";
      },
      { signal: new AbortController().signal, onFailure: (_error, retryInMs) => waits.push(retryInMs) },
    );
    expect(result).toBe("stored");
    expect(waits).toEqual([100, 200]);
  });

  it("throws a failure that is not worth retrying at once", async () => {
    const waits: number[] = [];
    const attempt = retryWhileDbAway(async () => Promise.reject(new Error("syntax error")), {
      signal: new AbortController().signal,
      onFailure: (_error, retryInMs) => waits.push(retryInMs),
      retryable: () => false,
    });
    await expect(attempt).rejects.toThrow("syntax error");
    expect(waits).toEqual([]);
  });

  it("an abort cuts the wait short and rejects with the last error", async () => {
    const stop = new AbortController();
    const started = Date.now();
    const attempt = retryWhileDbAway(async () => Promise.reject(new Error("connection refused")), {
      signal: stop.signal,
      onFailure: () => setTimeout(() => stop.abort(), 10),
    });
    await expect(attempt).rejects.toThrow("connection refused");
    expect(Date.now() - started).toBeLessThan(100);
  });
});
