// Address allocation inside 127.0.0.0/8: Linux routes the whole block to `lo`, so any address in it
// can be bound and reached without network setup — and nothing leaves the machine.

export interface Cidr {
  base: number;
  bits: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((acc, part) => {
    const n = Number(part);
    if (!/^\d{1,3}$/.test(part) || n > 255) throw new Error(`not an IPv4 address: ${ip}`);
    return acc * 256 + n;
  }, 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function parseCidr(cidr: string): Cidr {
  const [ip, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (ip === undefined || !Number.isInteger(bits) || bits < 8 || bits > 30) throw new Error(`not a CIDR range between /8 and /30: ${cidr}`);
  const size = 2 ** (32 - bits);
  const base = Math.floor(ipToInt(ip) / size) * size;
  return { base, bits };
}

export function loopbackCidr(cidr: string): Cidr {
  const parsed = parseCidr(cidr);
  const loopback = parseCidr('127.0.0.0/8');
  if (!contains(loopback, parsed.base) || parsed.bits < 8) throw new Error(`${cidr} is outside 127.0.0.0/8; this node only uses loopback addresses`);
  return parsed;
}

export function contains(range: Cidr, ip: number): boolean {
  const size = 2 ** (32 - range.bits);
  return ip >= range.base && ip < range.base + size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.base) || contains(b, a.base);
}

/**
 * The first free host address at or after `after + 1` (wrapping; network and broadcast addresses
 * skipped), or undefined when the range is full. Pods pass the last address they got, so a
 * just-released address is not handed out again at once (stale endpoints would reach a new pod).
 */
export function allocate(range: Cidr, used: ReadonlySet<string>, after?: string): string | undefined {
  const hosts = 2 ** (32 - range.bits) - 2;
  const start = after !== undefined && contains(range, ipToInt(after)) ? ipToInt(after) - range.base : 0;
  for (let i = 0; i < hosts; i++) {
    const offset = ((start + i) % hosts) + 1;
    const ip = intToIp(range.base + offset);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/**
 * Pods get a range of the same size in the other half of 127.0.0.0/8 (the service range with the
 * top bit of its second octet flipped: 127.96.0.0/16 → 127.224.0.0/16), so agents given different
 * service ranges on one machine never hand out the same pod address either.
 */
export function podRangeBeside(serviceRange: Cidr): Cidr {
  if (serviceRange.bits < 9) throw new Error('the service range must be /9 or smaller to leave room for pods');
  return { base: (serviceRange.base ^ 0x00800000) >>> 0, bits: serviceRange.bits };
}
