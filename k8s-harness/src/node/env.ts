// A container's environment from its spec, as the kubelet computes it. Pure: the shell fetches the
// referenced Secrets and ConfigMaps first (`referencedSources`) and passes their data in.
import type { V1Container, V1Pod, V1Service } from '@kubernetes/client-node';
import { expand } from './command.ts';

export interface EnvSources {
  /** Secret data already base64-decoded; a missing Secret is absent from the map */
  secrets: Map<string, Record<string, string>>;
  configMaps: Map<string, Record<string, string>>;
  podIP: string;
  hostIP: string;
  nodeName: string;
}

export type EnvResult = { ok: true; env: Record<string, string> } | { ok: false; message: string };

export function referencedSources(container: V1Container): { secrets: Set<string>; configMaps: Set<string> } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const from of container.envFrom ?? []) {
    if (from.secretRef?.name) secrets.add(from.secretRef.name);
    if (from.configMapRef?.name) configMaps.add(from.configMapRef.name);
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
    if (e.valueFrom?.configMapKeyRef?.name) configMaps.add(e.valueFrom.configMapKeyRef.name);
  }
  return { secrets, configMaps };
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * envFrom first (in order, with its prefix; keys that are not valid variable names are skipped,
 * as the kubelet does), then `env` in order, each value able to refer to earlier ones with `$(VAR)`.
 * A missing non-optional Secret/ConfigMap or key is the kubelet's CreateContainerConfigError.
 */
export function resolveEnv(pod: V1Pod, container: V1Container, sources: EnvSources): EnvResult {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const ref = from.secretRef ?? from.configMapRef;
    if (!ref?.name) continue;
    const isSecret = from.secretRef !== undefined;
    const data = (isSecret ? sources.secrets : sources.configMaps).get(ref.name);
    if (data === undefined) {
      if (ref.optional) continue;
      return { ok: false, message: `${isSecret ? 'secret' : 'configmap'} "${ref.name}" not found` };
    }
    for (const [key, value] of Object.entries(data)) {
      const name = `${from.prefix ?? ''}${key}`;
      if (ENV_NAME.test(name)) env[name] = value;
    }
  }
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env[e.name] = expand(e.value ?? '', env);
      continue;
    }
    const resolved = resolveValueFrom(pod, container, e.valueFrom, sources);
    if (resolved.ok === false) return resolved;
    if (resolved.value !== undefined) env[e.name] = resolved.value;
  }
  return { ok: true, env };
}

type ValueFrom = NonNullable<NonNullable<V1Container['env']>[number]['valueFrom']>;

function resolveValueFrom(
  pod: V1Pod,
  container: V1Container,
  valueFrom: ValueFrom,
  sources: EnvSources,
): { ok: true; value: string | undefined } | { ok: false; message: string } {
  const keyRef = valueFrom.secretKeyRef ?? valueFrom.configMapKeyRef;
  if (keyRef) {
    const isSecret = valueFrom.secretKeyRef !== undefined;
    const kind = isSecret ? 'Secret' : 'ConfigMap';
    const data = (isSecret ? sources.secrets : sources.configMaps).get(keyRef.name ?? '');
    if (data === undefined) {
      if (keyRef.optional) return { ok: true, value: undefined };
      return { ok: false, message: `${isSecret ? 'secret' : 'configmap'} "${keyRef.name}" not found` };
    }
    if (!Object.hasOwn(data, keyRef.key)) {
      if (keyRef.optional) return { ok: true, value: undefined };
      return { ok: false, message: `couldn't find key ${keyRef.key} in ${kind} ${pod.metadata?.namespace}/${keyRef.name}` };
    }
    return { ok: true, value: data[keyRef.key] };
  }
  if (valueFrom.fieldRef) {
    const value = fieldPath(pod, valueFrom.fieldRef.fieldPath, sources);
    if (value === undefined) return { ok: false, message: `unsupported fieldPath: ${valueFrom.fieldRef.fieldPath}` };
    return { ok: true, value };
  }
  if (valueFrom.resourceFieldRef) {
    const { resource, divisor } = valueFrom.resourceFieldRef;
    const [kind, name] = resource.split('.') as [string, string | undefined];
    const target = valueFrom.resourceFieldRef.containerName
      ? [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c) => c.name === valueFrom.resourceFieldRef?.containerName)
      : container;
    const quantity = (kind === 'limits' ? target?.resources?.limits : target?.resources?.requests)?.[name ?? ''];
    return { ok: true, value: resourceValue(name ?? '', quantity, divisor) };
  }
  return { ok: true, value: undefined };
}

/** The Downward API's fieldRef paths. */
export function fieldPath(pod: V1Pod, path: string, sources: Pick<EnvSources, 'podIP' | 'hostIP' | 'nodeName'>): string | undefined {
  const subscript = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (subscript) {
    const map = subscript[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[subscript[2]!] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'metadata.labels':
      return formatMap(pod.metadata?.labels);
    case 'metadata.annotations':
      return formatMap(pod.metadata?.annotations);
    case 'spec.nodeName':
      return sources.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return sources.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return sources.hostIP;
    default:
      return undefined;
  }
}

/** The Downward API's rendering of labels and annotations: sorted `key="value"` lines. */
export function formatMap(map: Record<string, string> | undefined): string {
  return Object.keys(map ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(map![k])}`)
    .join('\n');
}

// Without a limit the kubelet reports the node's allocatable; this node claims 2 CPUs and 4Gi.
const NODE_ALLOCATABLE: Record<string, number> = { cpu: 2, memory: 4 * 1024 ** 3, 'ephemeral-storage': 20 * 1024 ** 3 };

function resourceValue(name: string, quantity: string | undefined, divisor: string | undefined): string {
  const amount = quantity !== undefined ? parseQuantity(quantity) : (NODE_ALLOCATABLE[name] ?? 0);
  const unit = divisor !== undefined ? parseQuantity(divisor) : 1;
  return String(Math.ceil(amount / (unit || 1)));
}

const SUFFIXES: Record<string, number> = {
  m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5, Ei: 1024 ** 6,
};

export function parseQuantity(quantity: string): number {
  const match = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(quantity.trim());
  if (!match) return 0;
  return Number(match[1]) * (SUFFIXES[match[2]!] ?? 1);
}

/**
 * Docker-link-style variables for every Service of the namespace (enableServiceLinks, on by default),
 * e.g. `NIXERY_SERVICE_HOST`, `NIXERY_PORT_80_TCP_ADDR`; `kubernetes` from `default` always.
 */
export function serviceLinkEnv(
  services: readonly V1Service[],
  namespace: string,
  enableServiceLinks: boolean,
  address: (service: V1Service) => string | undefined = (s) => s.spec?.clusterIP,
): Record<string, string> {
  const env: Record<string, string> = {};
  const chosen = services.filter(
    (s) =>
      (enableServiceLinks && s.metadata?.namespace === namespace) ||
      (s.metadata?.namespace === 'default' && s.metadata?.name === 'kubernetes'),
  );
  for (const service of chosen) {
    const ip = address(service);
    if (!ip || ip === 'None') continue;
    const prefix = (service.metadata?.name ?? '').toUpperCase().replaceAll('-', '_');
    const ports = service.spec?.ports ?? [];
    const first = ports[0];
    if (!first) continue;
    env[`${prefix}_SERVICE_HOST`] = ip;
    env[`${prefix}_SERVICE_PORT`] = String(first.port);
    for (const p of ports) {
      if (p.name) env[`${prefix}_SERVICE_PORT_${p.name.toUpperCase().replaceAll('-', '_')}`] = String(p.port);
    }
    const firstProtocol = (first.protocol ?? 'TCP').toLowerCase();
    env[`${prefix}_PORT`] = `${firstProtocol}://${ip}:${first.port}`;
    for (const p of ports) {
      const protocol = p.protocol ?? 'TCP';
      const base = `${prefix}_PORT_${p.port}_${protocol}`;
      env[base] = `${protocol.toLowerCase()}://${ip}:${p.port}`;
      env[`${base}_PROTO`] = protocol.toLowerCase();
      env[`${base}_PORT`] = String(p.port);
      env[`${base}_ADDR`] = ip;
    }
  }
  return env;
}
