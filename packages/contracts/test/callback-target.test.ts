import { describe, expect, it } from "vitest";
import { createCallbackTargetPolicy, ipLiteralHost, ipLiteralRefusal } from "../src/callback-target.ts";

describe("ipLiteralRefusal: the submit-time check of a callback_url", () => {
  const policy = createCallbackTargetPolicy();

  it.each([
    ["http://127.0.0.1:9000/hook", /loopback/],
    ["https://[::1]/hook", /loopback/],
    // The WHATWG parser normalises these spellings of 127.0.0.1 before the check.
    ["http://2130706433/", /loopback/],
    ["http://0x7f.1/", /loopback/],
    ["http://127.1/", /loopback/],
    ["http://169.254.169.254/latest/meta-data/", /link-local/],
    ["http://10.0.0.8/", /private/],
    ["http://[::ffff:10.0.0.1]/", /IPv4-mapped/],
    ["http://[fd00::1]:8443/", /unique-local/],
    ["http://0.0.0.0/", /unspecified/],
  ])("refuses %s, saying why", (url, why) => {
    const refusal = ipLiteralRefusal(url, policy);
    expect(refusal).toMatch(why);
    expect(refusal).toMatch(/allow it with IX_CALLBACK_ALLOWED_HOSTS$/);
  });

  it.each(["https://8.8.8.8/hook", "http://[2606:4700:4700::1111]/", "https://hooks.example.com/x", "http://localhost:9000/", "not a url"])(
    "leaves %s alone (public, a name for the worker to resolve, or not a URL for the shape check)",
    (url) => {
      expect(ipLiteralRefusal(url, policy)).toBeNull();
    },
  );

  it("allows what IX_CALLBACK_ALLOWED_HOSTS lists", () => {
    const allowing = createCallbackTargetPolicy(["127.0.0.0/8", "::1", "10.1.0.0/16"]);
    expect(ipLiteralRefusal("http://127.0.0.1:9000/", allowing)).toBeNull();
    expect(ipLiteralRefusal("http://[::1]/", allowing)).toBeNull();
    expect(ipLiteralRefusal("http://10.1.2.3/", allowing)).toBeNull();
    expect(ipLiteralRefusal("http://10.2.0.1/", allowing)).toMatch(/private/);
  });

  it("ipLiteralHost strips IPv6 brackets and returns null for names", () => {
    expect(ipLiteralHost(new URL("http://[fe80::1]/"))).toBe("fe80::1");
    expect(ipLiteralHost(new URL("http://192.0.2.1/"))).toBe("192.0.2.1");
    expect(ipLiteralHost(new URL("http://example.com/"))).toBeNull();
  });
});
