// Cluster DNS emulated with hosts files: every pod gets one, bind-mounted over /etc/hosts, that
// names every Service the way cluster DNS would. Resolvers that read /etc/hosts (glibc, musl,
// busybox, Node) then find `<svc>.<ns>.svc.cluster.local` without a DNS server.
import type { V1Endpoints, V1Pod, V1Service } from '@kubernetes/client-node';

export const CLUSTER_DOMAIN = 'cluster.local';

export interface ServiceRecord {
  name: string;
  namespace: string;
  /** the ClusterIP, or for a headless Service its ready endpoint addresses */
  ips: string[];
}

/** `address`: where a Service is reached on this node (see services.ts; its ClusterIP by default). */
export function serviceRecords(
  services: readonly V1Service[],
  endpoints: readonly V1Endpoints[],
  address: (service: V1Service) => string | undefined = (s) => (s.spec?.clusterIP === 'None' ? undefined : s.spec?.clusterIP),
): ServiceRecord[] {
  const records: ServiceRecord[] = [];
  for (const service of services) {
    const name = service.metadata?.name;
    const namespace = service.metadata?.namespace;
    if (!name || !namespace) continue;
    const clusterIP = service.spec?.clusterIP;
    const ip = address(service);
    if (ip) {
      records.push({ name, namespace, ips: [ip] });
    } else if (clusterIP === 'None') {
      const ep = endpoints.find((e) => e.metadata?.name === name && e.metadata?.namespace === namespace);
      const ips = (ep?.subsets ?? []).flatMap((s) => (s.addresses ?? []).map((a) => a.ip));
      if (ips.length > 0) records.push({ name, namespace, ips: [...new Set(ips)] });
    }
  }
  return records.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/** The names cluster DNS answers for a Service, as seen from a pod in `fromNamespace` (search path included). */
export function serviceHostnames(record: Pick<ServiceRecord, 'name' | 'namespace'>, fromNamespace: string | undefined): string[] {
  const { name, namespace } = record;
  const names = [`${name}.${namespace}.svc.${CLUSTER_DOMAIN}`, `${name}.${namespace}.svc`, `${name}.${namespace}`];
  if (fromNamespace === namespace) names.push(name);
  return names;
}

/**
 * A registry host written with a Service name (`registry.ns.svc.cluster.local:5000`) as the node
 * reaches it: the Service's ClusterIP with the same port. Only fully qualified names
 * (`.svc.cluster.local` or `.svc`) are accepted, because the node has no namespace to search in.
 */
export function resolveServiceHost(host: string, records: readonly ServiceRecord[]): string | undefined {
  const match = /^([^:]+?)(?::(\d+))?$/.exec(host);
  if (!match) return undefined;
  const [, hostname, port] = match;
  const parts = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?\.?$/.exec(hostname!.toLowerCase());
  if (!parts) return undefined;
  const record = records.find((r) => r.name === parts[1] && r.namespace === parts[2]);
  const ip = record?.ips[0];
  if (!ip) return undefined;
  return port ? `${ip}:${port}` : ip;
}

export function podHostname(pod: V1Pod): { hostname: string; fqdn?: string } {
  const hostname = pod.spec?.hostname ?? pod.metadata?.name ?? 'pod';
  const subdomain = pod.spec?.subdomain;
  if (!subdomain) return { hostname };
  return { hostname, fqdn: `${hostname}.${subdomain}.${pod.metadata?.namespace}.svc.${CLUSTER_DOMAIN}` };
}

/** The pod's /etc/hosts: the kubelet's managed header, the pod's own name, HostAliases, then Services. */
export function hostsFile(pod: V1Pod, podIP: string, records: readonly ServiceRecord[]): string {
  const lines = [
    '# Kubernetes-managed hosts file (nixery-node: Services listed as cluster DNS would answer).',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  const { hostname, fqdn } = podHostname(pod);
  lines.push(fqdn ? `${podIP}\t${fqdn}\t${hostname}` : `${podIP}\t${hostname}`);
  const aliases = pod.spec?.hostAliases ?? [];
  if (aliases.length > 0) {
    lines.push('', '# Entries added by HostAliases.');
    for (const alias of aliases) lines.push(`${alias.ip}\t${(alias.hostnames ?? []).join('\t')}`);
  }
  if (records.length > 0) lines.push('', '# Services');
  const namespace = pod.metadata?.namespace;
  for (const record of records) {
    const names = serviceHostnames(record, namespace).join(' ');
    for (const ip of record.ips) lines.push(`${ip}\t${names}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Where the node pulls from for a registry host: a Service name resolves to the Service's address,
 * `localhost` and 127.0.0.0/8 are used as written; anything else is unreachable from this node.
 */
export function registryAddress(registry: string, records: readonly ServiceRecord[]): { address: string } | { error: string } {
  const viaService = resolveServiceHost(registry, records);
  if (viaService) return { address: viaService };
  const host = registry.replace(/:\d+$/, '');
  if (host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return { address: registry };
  if (/\.svc(\.cluster\.local)?$/.test(host)) return { error: `registry host "${host}" names no Service of this cluster` };
  return { error: `registry host "${host}" is neither a Service of this cluster (<service>.<namespace>.svc[.cluster.local]) nor a loopback address, and this node reaches nothing else` };
}
