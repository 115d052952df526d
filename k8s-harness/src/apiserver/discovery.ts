// Discovery documents: the legacy per-group-version lists and the aggregated
// APIGroupDiscoveryList (apidiscovery.k8s.io v2 and v2beta1) that kubectl and helm ask for first.
import type { ResourceRegistry } from './registry.ts';
import { apiVersionOf } from './resources.ts';
import type { ResourceInfo } from './resources.ts';

type JsonObject = Record<string, unknown>;

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.4',
  gitCommit: '59526cd4867447956156ae3a602fcbac10a2c335',
  gitTreeState: 'clean',
  buildDate: '2025-04-22T16:02:27Z',
  goVersion: 'go1.23.6',
  compiler: 'gc',
  platform: 'linux/amd64',
};

interface Subresource {
  name: string;
  kind: string;
  group?: string;
  version?: string;
  verbs: string[];
}

function subresources(r: ResourceInfo): Subresource[] {
  const out: Subresource[] = [];
  if (r.hasStatus) out.push({ name: 'status', kind: r.kind, verbs: ['get', 'patch', 'update'] });
  if (r.scale) out.push({ name: 'scale', kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] });
  for (const s of r.specialSubresources) {
    if (s === 'log') out.push({ name: 'log', kind: 'Pod', verbs: ['get'] });
    if (s === 'binding') out.push({ name: 'binding', kind: 'Binding', verbs: ['create'] });
    if (s === 'finalize') out.push({ name: 'finalize', kind: 'Namespace', verbs: ['update'] });
    if (s === 'proxy') out.push({ name: 'proxy', kind: 'ServiceProxyOptions', verbs: ['create', 'delete', 'get', 'patch', 'update'] });
    if (s === 'token') out.push({ name: 'token', kind: 'TokenRequest', group: 'authentication.k8s.io', version: 'v1', verbs: ['create'] });
  }
  return out;
}

export function apiVersions(serverAddress: string): JsonObject {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupEntry(group: string, versions: string[]): JsonObject {
  const gvs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: gvs, preferredVersion: gvs[0] };
}

export function apiGroupList(registry: ResourceRegistry): JsonObject {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: registry.groups().filter((g) => g.group !== '').map((g) => groupEntry(g.group, g.versions)) };
}

export function apiGroup(registry: ResourceRegistry, group: string): JsonObject | undefined {
  const g = registry.groups().find((x) => x.group === group);
  return g && group !== '' ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(g.group, g.versions) } : undefined;
}

export function apiResourceList(registry: ResourceRegistry, group: string, version: string): JsonObject | undefined {
  const resources = registry.resourcesOf(group, version);
  if (resources.length === 0) return undefined;
  const list: JsonObject[] = [];
  for (const r of resources) {
    list.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      ...(r.categories.length ? { categories: r.categories } : {}),
    });
    for (const s of subresources(r)) {
      list.push({ name: `${r.plural}/${s.name}`, singularName: '', namespaced: r.namespaced, ...(s.group !== undefined ? { group: s.group, version: s.version } : {}), kind: s.kind, verbs: s.verbs });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf({ group, version }), resources: list };
}

/** The aggregated form; `legacy` selects the core group (served at /api) or all others (/apis). */
export function aggregatedDiscovery(registry: ResourceRegistry, legacy: boolean, version: 'v2' | 'v2beta1'): JsonObject {
  const items = registry
    .groups()
    .filter((g) => (g.group === '') === legacy)
    .map((g) => ({
      metadata: { name: g.group, creationTimestamp: null },
      versions: g.versions.map((v) => ({
        version: v,
        resources: registry.resourcesOf(g.group, v).map((r) => ({
          resource: r.plural,
          responseKind: { group: r.group, version: r.version, kind: r.kind },
          scope: r.namespaced ? 'Namespaced' : 'Cluster',
          singularResource: r.singular,
          verbs: r.verbs,
          ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
          ...(r.categories.length ? { categories: r.categories } : {}),
          ...(subresources(r).length
            ? {
                subresources: subresources(r).map((s) => ({
                  subresource: s.name,
                  responseKind: { group: s.group ?? r.group, version: s.version ?? r.version, kind: s.kind },
                  verbs: s.verbs,
                })),
              }
            : {}),
        })),
        freshness: 'Current',
      })),
    }));
  return { kind: 'APIGroupDiscoveryList', apiVersion: `apidiscovery.k8s.io/${version}`, metadata: {}, items };
}

/** Picks the aggregated discovery version the client prefers, if any, from its Accept header. */
export function aggregatedVersionAccepted(accept: string | undefined): 'v2' | 'v2beta1' | undefined {
  for (const part of (accept ?? '').split(',')) {
    const params = new Map(part.split(';').slice(1).map((p) => {
      const [k, v] = p.trim().split('=');
      return [k ?? '', v ?? ''] as const;
    }));
    if (params.get('g') !== 'apidiscovery.k8s.io' || params.get('as') !== 'APIGroupDiscoveryList') continue;
    const v = params.get('v');
    if (v === 'v2' || v === 'v2beta1') return v;
  }
  return undefined;
}
