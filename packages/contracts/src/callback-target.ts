import { BlockList, isIP } from "node:net";

/**
 * Which addresses a callback may connect to: only public ones,
 * unless IX_CALLBACK_ALLOWED_HOSTS names the host or a range holding the
 * address. The worker checks the address it actually connects to (see
 * apps/worker/src/callback-sender.ts), so a public-looking hostname that
 * resolves to an internal address is still refused; the API applies the same
 * rule at submit time to a callback_url whose host is an IP literal
 * (`ipLiteralRefusal`), the one case it can decide without DNS.
 *
 * A subpath of @ix/contracts (not its main entry) because it needs node:net,
 * while the main entry stays usable by any client: it is the rule for which
 * callback_url a submission may name, and both apps need it (an app cannot
 * import another app).
 */

type Family = "ipv4" | "ipv6";

/** Non-public ranges, each with the name a refusal reason uses. */
const NON_PUBLIC: ReadonlyArray<readonly [string, number, Family, string]> = [
  ["0.0.0.0", 8, "ipv4", "unspecified ('this network')"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "carrier-grade NAT (CGNAT)"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local (cloud metadata lives here)"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "IETF protocol assignment"],
  ["192.0.2.0", 24, "ipv4", "documentation"],
  ["192.88.99.0", 24, "ipv4", "6to4 relay"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["198.51.100.0", 24, "ipv4", "documentation"],
  // Azure's platform endpoint (wireserver: VM agent, metadata, DNS), reachable from every Azure VM.
  ["168.63.129.16", 32, "ipv4", "Azure platform endpoint (wireserver)"],
  ["203.0.113.0", 24, "ipv4", "documentation"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  // A mapped address reaches an IPv4 host: never public, whatever it embeds.
  ["::ffff:0:0", 96, "ipv6", "IPv4-mapped IPv6"],
  ["::", 96, "ipv6", "IPv4-compatible IPv6"],
  ["64:ff9b::", 96, "ipv6", "NAT64 (embeds an IPv4 address)"],
  ["64:ff9b:1::", 48, "ipv6", "NAT64 (embeds an IPv4 address)"],
  ["100::", 64, "ipv6", "discard-only"],
  ["2001:db8::", 32, "ipv6", "documentation"],
  // Teredo tunnels to an IPv4 host (its server and client addresses are embedded).
  ["2001::", 32, "ipv6", "Teredo (embeds an IPv4 address)"],
  ["2002::", 16, "ipv6", "6to4 (embeds an IPv4 address)"],
  ["fc00::", 7, "ipv6", "unique-local"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["fec0::", 10, "ipv6", "site-local"],
  ["ff00::", 8, "ipv6", "multicast"],
];

// IPv6 ranges first: Node's BlockList also matches IPv4-mapped IPv6 against
// IPv4 rules, and "IPv4-mapped" is the more telling reason for such an address.
const RANGES = [...NON_PUBLIC].sort((a, b) => (a[2] === b[2] ? 0 : a[2] === "ipv6" ? -1 : 1)).map(([network, prefix, family, label]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { list, family, label, cidr: `${network}/${prefix}` };
});

function familyOf(address: string): Family | null {
  const version = isIP(address);
  return version === 4 ? "ipv4" : version === 6 ? "ipv6" : null;
}

/** Why `address` is not public, or null when it is. */
export function nonPublicRange(address: string): string | null {
  const family = familyOf(address);
  if (family === null) return "not an IP address";
  for (const range of RANGES) {
    if (range.family === "ipv6" && family === "ipv4") continue;
    if (range.list.check(address, family)) return `${range.label} (${range.cidr})`;
  }
  return null;
}

export interface CallbackTargetPolicy {
  /** Why connecting to `address` for a URL with host `hostname` is refused, or null if allowed. */
  refusal(hostname: string, address: string): string | null;
}

export type ParsedAllowedHosts = { ok: true; hosts: Set<string>; ranges: BlockList } | { ok: false; error: string };

function normalizeHostname(hostname: string): string {
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  return bare.toLowerCase().replace(/\.$/, "");
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * Parses IX_CALLBACK_ALLOWED_HOSTS entries: hostnames (matched exactly,
 * case-insensitively), IP addresses, and CIDR ranges such as 10.1.0.0/16.
 */
export function parseAllowedHosts(entries: readonly string[]): ParsedAllowedHosts {
  const hosts = new Set<string>();
  const ranges = new BlockList();
  for (const raw of entries) {
    const entry = normalizeHostname(raw.trim());
    const slash = entry.indexOf("/");
    if (slash >= 0) {
      const network = entry.slice(0, slash);
      const prefixText = entry.slice(slash + 1);
      const family = familyOf(network);
      const prefix = Number(prefixText);
      const max = family === "ipv4" ? 32 : 128;
      if (family === null || !/^\d{1,3}$/.test(prefixText) || prefix > max) {
        return { ok: false, error: `"${raw}" is not a valid CIDR range (e.g. 10.0.0.0/8 or fd00::/8)` };
      }
      ranges.addSubnet(network, prefix, family);
    } else if (familyOf(entry) !== null) {
      ranges.addAddress(entry, familyOf(entry) ?? undefined);
    } else if (HOSTNAME.test(entry)) {
      hosts.add(entry);
    } else {
      return { ok: false, error: `"${raw}" is neither a hostname, an IP address nor a CIDR range` };
    }
  }
  return { ok: true, hosts, ranges };
}

export function createCallbackTargetPolicy(allowedHosts: readonly string[] = []): CallbackTargetPolicy {
  const parsed = parseAllowedHosts(allowedHosts);
  if (!parsed.ok) throw new RangeError(`IX_CALLBACK_ALLOWED_HOSTS: ${parsed.error}`);
  const { hosts, ranges } = parsed;
  return {
    refusal(hostname, address) {
      const family = familyOf(address);
      if (family === null) return `${address} is not an IP address`;
      const why = nonPublicRange(address);
      if (why === null) return null;
      if (hosts.has(normalizeHostname(hostname)) || ranges.check(address, family)) return null;
      const target = normalizeHostname(hostname) === address ? address : `${hostname} (${address})`;
      return `callback target ${target} is ${why}, which is refused; allow it with IX_CALLBACK_ALLOWED_HOSTS`;
    },
  };
}

/** The host of a URL as an IP address (IPv6 without brackets), or null when it is a name. */
export function ipLiteralHost(url: URL): string | null {
  const host = url.hostname.startsWith("[") && url.hostname.endsWith("]") ? url.hostname.slice(1, -1) : url.hostname;
  return familyOf(host) === null ? null : host;
}

/**
 * Why a callback_url is refused at submit time, or null. Only a host written
 * as an IP literal is checked (the WHATWG parser has already normalised forms
 * such as `http://2130706433/` or `http://0x7f.1/` to 127.0.0.1); a hostname is
 * left to the worker's check on the address it resolves to at delivery.
 */
export function ipLiteralRefusal(url: string, policy: CallbackTargetPolicy): string | null {
  if (!URL.canParse(url)) return null; // the scheme and shape check reports it
  const parsed = new URL(url);
  const address = ipLiteralHost(parsed);
  return address === null ? null : policy.refusal(parsed.hostname, address);
}
