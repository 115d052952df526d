// Strict node pulls: what a containerd node can and cannot reach. A real node's runtime resolves a
// registry host through the machine's own resolver (/etc/hosts and its DNS servers), never cluster
// DNS — so `<svc>.<ns>.svc.cluster.local` is no host to it unless the hosts directory names an
// endpoint it can reach (a ClusterIP, which kube-proxy serves on every node) — and it speaks plain
// HTTP only to localhost or to an endpoint configured as `http://`. These are the decisions, pure;
// the puller (puller.ts) applies them when the cluster runs with `strictNodePulls`.
import net from 'node:net';
import type { RegistryReference } from './images.ts';
import type { RegistryEndpoint } from './registry-hosts.ts';

/** `host[:port]` → the host name, without brackets. */
export function hostOf(hostPort: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostPort);
  if (m) return m[1]!;
  const colon = hostPort.lastIndexOf(':');
  return colon > 0 && hostPort.indexOf(':') === colon ? hostPort.slice(0, colon) : hostPort;
}

function portOf(hostPort: string): string {
  const m = /^(?:\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostPort);
  return m ? m[1]! : '';
}

/** containerd's docker.IsLocalhost: `localhost` or a loopback address (127/8, ::1). */
export function isLocalhost(hostPort: string): boolean {
  const host = hostOf(hostPort);
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** How the node talks to one endpoint. */
export interface NodeTransport {
  /** the scheme of the first request */
  scheme: 'https' | 'http';
  /** `tls`: HTTPS only; `plain`: HTTP only; `fallback`: HTTPS, and HTTP when the endpoint does not speak TLS */
  mode: 'tls' | 'plain' | 'fallback';
  /** certificates are not verified */
  skipVerify: boolean;
}

/**
 * containerd's ConfigureHosts for one endpoint: as configured (`http://` plain — with a TLS
 * configuration (`ca`) and a port other than 80 HTTPS first, falling back to HTTP; `https://`
 * verified against the system roots and the `ca` files unless `skip_verify`); and where nothing
 * describes the host (no hosts.toml), HTTPS verified — except localhost: port 443 or none HTTPS
 * (unverified), port 80 HTTP, any other port HTTPS unverified falling back to HTTP.
 */
export function nodeTransport(endpoint: RegistryEndpoint): NodeTransport {
  const port = portOf(endpoint.host);
  if (endpoint.scheme === 'http') {
    if (endpoint.caFiles.length > 0 && port !== '' && port !== '80') return { scheme: 'https', mode: 'fallback', skipVerify: endpoint.skipVerify };
    return { scheme: 'http', mode: 'plain', skipVerify: endpoint.skipVerify };
  }
  if (endpoint.scheme === 'https') return { scheme: 'https', mode: 'tls', skipVerify: endpoint.skipVerify };
  if (isLocalhost(endpoint.host)) {
    if (port === '' || port === '443') return { scheme: 'https', mode: 'tls', skipVerify: true };
    if (port === '80') return { scheme: 'http', mode: 'plain', skipVerify: false };
    return { scheme: 'http', mode: 'fallback', skipVerify: true };
  }
  return { scheme: 'https', mode: 'tls', skipVerify: endpoint.skipVerify };
}

/** The host name the node's resolver must find for an endpoint, or undefined for an address. */
export function nameToResolve(endpoint: RegistryEndpoint): string | undefined {
  const host = hostOf(endpoint.host);
  return net.isIP(host) === 0 ? host : undefined;
}

/** Go's words for a failed lookup (net.DNSError), from the node's getaddrinfo error. */
export function lookupFailure(hostname: string, error: NodeJS.ErrnoException): string {
  const code = error.code ?? '';
  const why = ['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA'].includes(code) ? 'no such host' : code === 'EAI_AGAIN' ? 'server misbehaving' : error.message;
  return `lookup ${hostname}: ${why}`;
}

/**
 * The kubelet's ErrImagePull message when containerd could not reach the registry to resolve the
 * reference, e.g. `failed to pull and unpack image "reg.ns.svc.cluster.local:5000/x:y": failed to
 * resolve reference "reg.ns.svc.cluster.local:5000/x:y": failed to do request: Head
 * "https://reg.ns.svc.cluster.local:5000/v2/x/manifests/y": dial tcp: lookup
 * reg.ns.svc.cluster.local: no such host`.
 */
export function unreachableMessage(image: string, reference: RegistryReference, endpoint: RegistryEndpoint, transport: NodeTransport, cause: string): string {
  const object = reference.digest ?? reference.tag ?? 'latest';
  const url = `${transport.scheme}://${endpoint.host}/v2/${reference.repository}/manifests/${object}`;
  return `failed to pull and unpack image "${image}": failed to resolve reference "${image}": failed to do request: Head "${url}": dial tcp: ${cause}`;
}
