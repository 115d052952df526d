// Each running test cluster needs its own loopback /16 for Service ClusterIPs (pod IPs come from
// its mirror range): clusters started by parallel test files must not listen on the same
// addresses. A cluster claims a range by binding a sentinel socket inside it, which only one
// process at a time can hold.
import net from 'node:net';

/** Second octets tried, in order; the node agent's own suites use 97 to 99, the default is 96. */
const CANDIDATES = Array.from({ length: 28 }, (_, i) => 100 + i);
const SENTINEL_PORT = 65535;

export interface ClaimedRange {
  range: string;
  release(): Promise<void>;
}

export async function claimClusterIpRange(): Promise<ClaimedRange> {
  for (const octet of CANDIDATES) {
    const server = net.createServer();
    const claimed = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(SENTINEL_PORT, `127.${octet}.255.254`, () => resolve(true));
    });
    if (claimed) {
      return {
        range: `127.${octet}.0.0/16`,
        release: () => new Promise((resolve) => server.close(() => resolve())),
      };
    }
  }
  throw new Error(`every Service ClusterIP range 127.${CANDIDATES[0]}–${CANDIDATES.at(-1)}.0.0/16 is in use by another test cluster`);
}
