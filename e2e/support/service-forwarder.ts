// Reaches a Service from the test process through the API server's service proxy
// (/api/v1/namespaces/NS/services/NAME:PORT/proxy/...), which works from outside any cluster:
// ClusterIPs do not. A local HTTP server on loopback forwards every request there, so registry
// clients (skopeo, fetch) use it as if it were the registry itself.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface ServiceForwarder {
  /** host:port on loopback */
  host: string;
  close(): Promise<void>;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host'];

export async function forwardService(kubeconfigPath: string, namespace: string, service: string, port: number | string): Promise<ServiceForwarder> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${kubeconfigPath} has no current cluster`);
  const base = new URL(cluster.server);
  const prefix = `${base.pathname.replace(/\/$/, '')}/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(service)}:${port}/proxy`;
  const tls: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const agent = new https.Agent({ keepAlive: true, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}), ...(tls.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}) });
  const credentials = (tls.headers ?? {}) as Record<string, string>;

  const server = http.createServer((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      // The API server authenticates with Authorization and would drop the client's anyway.
      if (value !== undefined && !HOP_BY_HOP.includes(name) && name !== 'authorization') headers[name] = value;
    }
    const upstream = https.request(
      { protocol: 'https:', hostname: base.hostname, port: base.port || 443, method: req.method, path: `${prefix}${req.url ?? '/'}`, agent, headers: { ...headers, ...credentials } },
      (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value === undefined || HOP_BY_HOP.includes(name)) continue;
          out[name] = rewrite(name, value, prefix, `http://${forwarder.host}`);
        }
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
      },
    );
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`service proxy: ${error.message}`);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const forwarder: ServiceForwarder = {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return forwarder;
}

/**
 * URLs the service hands out point at where it thinks it is: Locations carry the proxy prefix the
 * API server added, and a token realm names the pod's own address. Both must lead back here.
 */
function rewrite(name: string, value: string | string[], prefix: string, self: string): string | string[] {
  if (Array.isArray(value)) return value.map((v) => rewrite(name, v, prefix, self) as string);
  if (name === 'location') {
    const url = new URL(value, 'http://service.invalid');
    const local = stripPrefix(url.pathname, prefix);
    return local === url.pathname ? value : `${local}${url.search}`;
  }
  if (name === 'www-authenticate') return value.replace(/realm="https?:\/\/[^/"]+(\/[^"]*)?"/g, (_m, rest: string | undefined) => `realm="${self}${stripPrefix(rest ?? '/', prefix)}"`);
  return value;
}

/** The path as the service sees it, if `pathname` is under the proxy prefix; else `pathname`. */
function stripPrefix(pathname: string, prefix: string): string {
  return pathname === prefix || pathname.startsWith(`${prefix}/`) ? pathname.slice(prefix.length) || '/' : pathname;
}
