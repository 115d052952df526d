// services/proxy: where kube-apiserver's Service storage (ResourceLocation) sends a proxied
// request. The id in the URL is `name`, `name:port` or `scheme:name:port`; the port is a Service
// port's name, or its number (translated to that port's name). The target is a ready address of
// the Service's Endpoints that carries the port name and still belongs to a pod of the namespace,
// picked at random as upstream does.
import { obj, type JsonObject } from './json.ts';
import { badRequest, serviceUnavailable } from './errors.ts';

export interface ServiceProxyId {
  /** '' means http, as upstream's proxy handler defaults it */
  scheme: '' | 'http' | 'https';
  name: string;
  /** a port name, a port number, or '' (the unnamed port) */
  port: string;
}

/** As apimachinery's SplitSchemeNamePort: anything else is a 400 `invalid service request`. */
export function parseServiceProxyId(id: string): ServiceProxyId {
  const parts = id.split(':');
  let scheme = '';
  let name = '';
  let port = '';
  if (parts.length === 1) [name = ''] = parts;
  else if (parts.length === 2) [name = '', port = ''] = parts;
  else if (parts.length === 3) [scheme = '', name = '', port = ''] = parts;
  else throw badRequest(`invalid service request ${JSON.stringify(id)}`);
  if (name === '' || (scheme !== '' && scheme !== 'http' && scheme !== 'https')) throw badRequest(`invalid service request ${JSON.stringify(id)}`);
  return { scheme: scheme as ServiceProxyId['scheme'], name, port };
}

/** Reads objects of the request's namespace; `service` and `endpoints` throw the 404 Status of a missing object. */
export interface NamespaceReader {
  service(name: string): JsonObject;
  endpoints(name: string): JsonObject;
  pod(name: string): JsonObject | undefined;
}

const list = (v: unknown): JsonObject[] => (Array.isArray(v) ? v.map(obj) : []);

/**
 * The backend URL (scheme://ip:port, no path) for a proxy request to Service `id`. Like upstream,
 * a port number needs the Service (404 `services "x" not found`), a port name only its Endpoints
 * (404 `endpoints "x" not found`), and a named port must be named: `web` alone reaches only an
 * unnamed port.
 */
export function serviceLocation(namespace: string, id: string, read: NamespaceReader, random: () => number = Math.random): URL {
  const { scheme, name, port } = parseServiceProxyId(id);
  let portName = port;
  if (/^[+-]?\d+$/.test(port)) {
    const number = Number(port);
    const match = list(obj(read.service(name).spec).ports).find((p) => Number(p.port) === number);
    if (!match) throw serviceUnavailable(`no service port ${number} found for service ${JSON.stringify(name)}`);
    portName = typeof match.name === 'string' ? match.name : '';
  }
  const subsets = list(read.endpoints(name).subsets);
  if (subsets.length === 0) throw serviceUnavailable(`no endpoints available for service ${JSON.stringify(name)}`);
  const firstSubset = Math.floor(random() * subsets.length);
  for (let s = 0; s < subsets.length; s++) {
    const subset = subsets[(firstSubset + s) % subsets.length] ?? {};
    const addresses = list(subset.addresses);
    if (addresses.length === 0) continue;
    for (const p of list(subset.ports)) {
      if ((typeof p.name === 'string' ? p.name : '') !== portName) continue;
      const firstAddress = Math.floor(random() * addresses.length);
      for (let a = 0; a < addresses.length; a++) {
        const address = addresses[(firstAddress + a) % addresses.length] ?? {};
        if (!belongsToPod(namespace, address, read)) continue;
        const ip = String(address.ip);
        return new URL(`${scheme || 'http'}://${ip.includes(':') ? `[${ip}]` : ip}:${Number(p.port)}`);
      }
    }
  }
  throw serviceUnavailable(`no endpoints available for service ${JSON.stringify(id)}`);
}

/**
 * Upstream only proxies to an address whose targetRef names a pod of the request's namespace that
 * has that IP, so Endpoints written by hand (like the `kubernetes` Service's) are never used.
 */
function belongsToPod(namespace: string, address: JsonObject, read: NamespaceReader): boolean {
  const ref = obj(address.targetRef);
  if (typeof ref.name !== 'string' || ref.namespace !== namespace) return false;
  const pod = read.pod(ref.name);
  if (!pod) return false;
  return list(obj(pod.status).podIPs).some((p) => p.ip === address.ip);
}
