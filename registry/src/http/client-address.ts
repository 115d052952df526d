// Who a request comes from, as the per-client limits (builds, credential checks) count clients: the address of the
// TCP peer. X-Forwarded-For and similar headers are not read: any client can write them. Behind
// a proxy, a load balancer that does not preserve source addresses, or an ingress, every client
// therefore has the proxy's address and shares one allowance (README: Running it safely).

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * The key a client's builds and credential checks are counted under: an IPv4 address as it is, an IPv6 address by its
 * /64 (a single host is commonly given a whole /64, so counting addresses would count nothing);
 * an IPv4-mapped IPv6 address as its IPv4 address.
 */
export function clientAddress(remoteAddress: string | undefined): string {
  if (!remoteAddress) return 'unknown';
  const mapped = MAPPED_IPV4.exec(remoteAddress);
  if (mapped) return mapped[1]!;
  if (!remoteAddress.includes(':')) return remoteAddress;
  const groups = ipv6Groups(remoteAddress);
  return groups ? `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64` : remoteAddress;
}

/** The eight 16-bit groups of an IPv6 address, or undefined if it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const bare = address.split('%')[0]!;
  const halves = bare.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const octets = group.split('.').map(Number);
        if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return undefined;
        groups.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(group)) groups.push(parseInt(group, 16));
      else return undefined;
    }
    return groups;
  };
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  if (!left || !right) return undefined;
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  return [...left, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right];
}
