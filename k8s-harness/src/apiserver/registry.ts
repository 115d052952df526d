// The resources served right now: the built-in ones plus one set per established CRD.
import { builtinResources, compareVersions } from './resources.ts';
import type { ResourceInfo } from './resources.ts';

export interface GroupVersions {
  group: string;
  /** preferred (newest) first */
  versions: string[];
}

export class ResourceRegistry {
  private readonly builtins = builtinResources();
  private readonly custom = new Map<string, ResourceInfo[]>();

  all(): ResourceInfo[] {
    return [...this.builtins, ...[...this.custom.values()].flat()];
  }

  find(group: string, version: string, plural: string): ResourceInfo | undefined {
    return this.all().find((r) => r.group === group && r.version === version && r.plural === plural);
  }

  byKind(group: string, version: string, kind: string): ResourceInfo | undefined {
    return this.all().find((r) => r.group === group && r.version === version && r.kind === kind);
  }

  /** The version whose shape objects are stored in (built-ins: the only version). */
  storageInfo(storageKey: string): ResourceInfo | undefined {
    const all = this.all().filter((r) => r.storageKey === storageKey);
    return all.find((r) => r.storageVersion && r.crd !== undefined) ?? all.find((r) => r.storageVersion && r.group !== 'events.k8s.io') ?? all[0];
  }

  setCustom(crdName: string, resources: ResourceInfo[]): void {
    if (resources.length === 0) this.custom.delete(crdName);
    else this.custom.set(crdName, resources);
  }

  customFor(crdName: string): ResourceInfo[] {
    return this.custom.get(crdName) ?? [];
  }

  removeCustom(crdName: string): void {
    this.custom.delete(crdName);
  }

  groups(): GroupVersions[] {
    const byGroup = new Map<string, Set<string>>();
    for (const r of this.all()) {
      const set = byGroup.get(r.group) ?? new Set<string>();
      set.add(r.version);
      byGroup.set(r.group, set);
    }
    return [...byGroup.entries()].map(([group, versions]) => ({ group, versions: [...versions].sort(compareVersions) }));
  }

  resourcesOf(group: string, version: string): ResourceInfo[] {
    return this.all().filter((r) => r.group === group && r.version === version);
  }
}
