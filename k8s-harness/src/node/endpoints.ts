// The Endpoints controller's decision: which pod addresses and ports stand behind a Service.
import type { V1EndpointAddress, CoreV1EndpointPort, V1Endpoints, V1EndpointSubset, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { matchesMap } from './labels.ts';
import { isPodReady, isTerminalPod } from './owners.ts';

/** A service port's targetPort on one pod: a number, or a container port found by name. */
export function resolveTargetPort(port: V1ServicePort, pod: V1Pod): number | undefined {
  const target = (port.targetPort as number | string | undefined) ?? port.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const container of pod.spec?.containers ?? []) {
    const found = container.ports?.find((p) => p.name === target && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP'));
    if (found) return found.containerPort;
  }
  return undefined;
}

/**
 * Endpoints for a Service with a selector (undefined for one without: those are written by hand).
 * Ready pods are `addresses`, others `notReadyAddresses` (all `addresses` with
 * publishNotReadyAddresses); terminating and finished pods are left out. Pods whose named ports
 * resolve to the same numbers share a subset.
 */
export function endpointsFor(service: V1Service, pods: readonly V1Pod[], nodeName: string): V1Endpoints | undefined {
  const selector = service.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return undefined;
  const namespace = service.metadata?.namespace;
  const subsets = new Map<string, { ports: CoreV1EndpointPort[]; addresses: V1EndpointAddress[]; notReady: V1EndpointAddress[] }>();
  const candidates = pods
    .filter((p) => p.metadata?.namespace === namespace && matchesMap(selector, p.metadata?.labels))
    .filter((p) => p.status?.podIP && !isTerminalPod(p) && !p.metadata?.deletionTimestamp)
    .sort((a, b) => (a.status?.podIP ?? '').localeCompare(b.status?.podIP ?? ''));
  for (const pod of candidates) {
    const ports: CoreV1EndpointPort[] = [];
    for (const sp of service.spec?.ports ?? []) {
      const port = resolveTargetPort(sp, pod);
      if (port === undefined) continue;
      const ep: CoreV1EndpointPort = { port, protocol: sp.protocol ?? 'TCP' };
      if (sp.name) ep.name = sp.name;
      if (sp.appProtocol) ep.appProtocol = sp.appProtocol;
      ports.push(ep);
    }
    if (ports.length === 0 && (service.spec?.ports ?? []).length > 0) continue;
    const key = JSON.stringify(ports);
    const subset = subsets.get(key) ?? { ports, addresses: [], notReady: [] };
    subsets.set(key, subset);
    const address: V1EndpointAddress = {
      ip: pod.status?.podIP ?? '',
      nodeName: pod.spec?.nodeName ?? nodeName,
      targetRef: { kind: 'Pod', name: pod.metadata?.name ?? '', namespace: namespace ?? '', uid: pod.metadata?.uid ?? '' },
    };
    if (pod.spec?.hostname) address.hostname = pod.spec.hostname;
    if (isPodReady(pod) || service.spec?.publishNotReadyAddresses) subset.addresses.push(address);
    else subset.notReady.push(address);
  }
  const result: V1EndpointSubset[] = [];
  for (const { ports, addresses, notReady } of subsets.values()) {
    const subset: V1EndpointSubset = { ports };
    if (addresses.length > 0) subset.addresses = addresses;
    if (notReady.length > 0) subset.notReadyAddresses = notReady;
    result.push(subset);
  }
  const labels: Record<string, string> = { ...(service.metadata?.labels ?? {}) };
  if (service.spec?.clusterIP === 'None') labels['service.kubernetes.io/headless'] = '';
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: service.metadata?.name ?? '', namespace: namespace ?? 'default', labels },
    subsets: result,
  };
}

/** Ready `ip:port` pairs behind one Service port, for the proxy. */
export function readyBackends(endpoints: V1Endpoints | undefined, servicePort: V1ServicePort): Array<{ ip: string; port: number }> {
  const out: Array<{ ip: string; port: number }> = [];
  for (const subset of endpoints?.subsets ?? []) {
    const port = subset.ports?.find((p) => (servicePort.name ? p.name === servicePort.name : true) && (p.protocol ?? 'TCP') === (servicePort.protocol ?? 'TCP'));
    if (!port) continue;
    for (const address of subset.addresses ?? []) out.push({ ip: address.ip, port: port.port });
  }
  return out;
}
