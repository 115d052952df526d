// Service networking decisions: the loopback address a Service is served at, and the TCP
// listeners the proxy keeps open for it.
import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import { contains, intToIp, ipToInt, type Cidr } from './ipam.ts';

/**
 * The address a Service is reachable at on this node: its ClusterIP when that lies in
 * 127.0.0.0/8; otherwise (an API server that allocated e.g. 10.96.0.12) its loopback twin — the
 * same host bits inside `range` (127.96.0.12 for a /16) — since nothing else can be bound here.
 * Headless and ExternalName Services have none.
 */
export function clusterAddress(service: V1Service, range: Cidr): string | undefined {
  const ip = service.spec?.clusterIP;
  if (!ip || ip === 'None' || service.spec?.type === 'ExternalName') return undefined;
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return undefined;
  }
  if (contains({ base: ipToInt('127.0.0.0'), bits: 8 }, n)) return ip;
  const size = 2 ** (32 - range.bits);
  return intToIp(range.base + (n % size));
}

export interface Listener {
  /** `ip:port`, unique per listener */
  key: string;
  ip: string;
  port: number;
  namespace: string;
  service: string;
  servicePort: V1ServicePort;
}

/**
 * One TCP listener per Service port at the Service's address; NodePort and LoadBalancer Services
 * also get their nodePort on 127.0.0.1 (the node's address). UDP and SCTP ports are not proxied.
 */
export function desiredListeners(services: readonly V1Service[], range: Cidr): Listener[] {
  const listeners = new Map<string, Listener>();
  for (const service of services) {
    const ip = clusterAddress(service, range);
    if (!ip) continue;
    const namespace = service.metadata?.namespace ?? 'default';
    const name = service.metadata?.name ?? '';
    for (const port of service.spec?.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const add = (address: string, number: number) => {
        const key = `${address}:${number}`;
        if (!listeners.has(key)) listeners.set(key, { key, ip: address, port: number, namespace, service: name, servicePort: port });
      };
      add(ip, port.port);
      if ((service.spec?.type === 'NodePort' || service.spec?.type === 'LoadBalancer') && port.nodePort) add('127.0.0.1', port.nodePort);
    }
  }
  return [...listeners.values()];
}
