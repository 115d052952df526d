// How lists and maps inside an object merge: the patchMergeKey/patchStrategy tags of the
// built-in Go types (for strategic merge patch) and their x-kubernetes-list-type/-map-keys
// (for server-side apply), or a CRD's structural schema. Lists not described are atomic, as
// they are for the apiserver.
import type { Schema } from './schema.ts';

export type ListType = { kind: 'atomic' } | { kind: 'set' } | { kind: 'map'; keys: string[] };

export interface TypeNode {
  field(name: string): TypeNode;
  /** list items, or the values of a map */
  elem(): TypeNode;
  listType(): ListType;
  /** the strategic-merge-patch merge key of a list of objects, when it merges */
  mergeKey(): string | undefined;
  /** patchStrategy "merge" on a list of scalars (finalizers) */
  mergesScalars(): boolean;
  retainKeys(): boolean;
  /** x-kubernetes-map-type: atomic — the whole map is one value */
  atomicMap(): boolean;
}

interface FieldHint {
  type?: string;
  mapKeys?: string[];
  set?: boolean;
  /** strategic merge key; defaults to the first map key */
  smpKey?: string;
  retainKeys?: boolean;
  /** SMP merges by key but SSA treats the list as atomic */
  smpOnly?: boolean;
}

const CONDITIONS: FieldHint = { mapKeys: ['type'] };

const TYPES: Record<string, Record<string, FieldHint>> = {
  ObjectMeta: {
    finalizers: { set: true },
    ownerReferences: { mapKeys: ['uid'] },
  },
  PodTemplateSpec: { metadata: { type: 'ObjectMeta' }, spec: { type: 'PodSpec' } },
  PodSpec: {
    containers: { type: 'Container', mapKeys: ['name'] },
    initContainers: { type: 'Container', mapKeys: ['name'] },
    ephemeralContainers: { type: 'Container', mapKeys: ['name'] },
    volumes: { type: 'Volume', mapKeys: ['name'], retainKeys: true },
    imagePullSecrets: { mapKeys: ['name'] },
    hostAliases: { mapKeys: ['ip'] },
    topologySpreadConstraints: { mapKeys: ['topologyKey', 'whenUnsatisfiable'], smpKey: 'topologyKey' },
    schedulingGates: { mapKeys: ['name'] },
    resourceClaims: { mapKeys: ['name'] },
  },
  Volume: {},
  Container: {
    ports: { mapKeys: ['containerPort', 'protocol'], smpKey: 'containerPort' },
    env: { mapKeys: ['name'] },
    volumeMounts: { mapKeys: ['mountPath'] },
    volumeDevices: { mapKeys: ['devicePath'] },
    resizePolicy: { mapKeys: ['resourceName'] },
  },
  DeploymentSpec: { template: { type: 'PodTemplateSpec' }, strategy: { retainKeys: true } },
  WorkloadSpec: { template: { type: 'PodTemplateSpec' } },
  CronJobSpec: { jobTemplate: { type: 'JobTemplateSpec' } },
  JobTemplateSpec: { metadata: { type: 'ObjectMeta' }, spec: { type: 'WorkloadSpec' } },
  ConditionsStatus: { conditions: CONDITIONS },
  PodStatus: { conditions: CONDITIONS },
  NodeStatus: { conditions: CONDITIONS, addresses: { mapKeys: ['type'], smpOnly: true } },
  ServiceSpec: { ports: { mapKeys: ['port', 'protocol'], smpKey: 'port' } },
  ServiceStatus: { conditions: CONDITIONS },
};

/** Root types per kind (apiVersion does not matter: each kind is served in one version). */
const ROOTS: Record<string, Record<string, FieldHint>> = {
  Deployment: { spec: { type: 'DeploymentSpec' }, status: { type: 'ConditionsStatus' } },
  ReplicaSet: { spec: { type: 'WorkloadSpec' }, status: { type: 'ConditionsStatus' } },
  StatefulSet: { spec: { type: 'WorkloadSpec' }, status: { type: 'ConditionsStatus' } },
  DaemonSet: { spec: { type: 'WorkloadSpec' }, status: { type: 'ConditionsStatus' } },
  Job: { spec: { type: 'WorkloadSpec' }, status: { type: 'ConditionsStatus' } },
  CronJob: { spec: { type: 'CronJobSpec' } },
  Pod: { spec: { type: 'PodSpec' }, status: { type: 'PodStatus' } },
  PodTemplate: { template: { type: 'PodTemplateSpec' } },
  Service: { spec: { type: 'ServiceSpec' }, status: { type: 'ServiceStatus' } },
  Node: { status: { type: 'NodeStatus' } },
  Namespace: { status: { type: 'ConditionsStatus' } },
  PersistentVolumeClaim: { status: { type: 'ConditionsStatus' } },
  PodDisruptionBudget: { status: { type: 'ConditionsStatus' } },
  CustomResourceDefinition: { status: { type: 'ConditionsStatus' } },
};

const ATOMIC: ListType = { kind: 'atomic' };

class HintNode implements TypeNode {
  private readonly fields: Record<string, FieldHint>;
  private readonly hint: FieldHint | undefined;
  constructor(fields: Record<string, FieldHint>, hint?: FieldHint) {
    this.fields = fields;
    this.hint = hint;
  }
  field(name: string): TypeNode {
    const h = this.fields[name];
    if (!h) return UNKNOWN;
    return new HintNode(h.type ? (TYPES[h.type] ?? {}) : {}, h);
  }
  elem(): TypeNode {
    return new HintNode(this.fields);
  }
  listType(): ListType {
    const h = this.hint;
    if (!h) return ATOMIC;
    if (h.set) return { kind: 'set' };
    if (h.mapKeys && !h.smpOnly) return { kind: 'map', keys: h.mapKeys };
    return ATOMIC;
  }
  mergeKey(): string | undefined {
    return this.hint?.smpKey ?? this.hint?.mapKeys?.[0];
  }
  mergesScalars(): boolean {
    return this.hint?.set === true;
  }
  retainKeys(): boolean {
    return this.hint?.retainKeys === true;
  }
  atomicMap(): boolean {
    return false;
  }
}

const UNKNOWN: TypeNode = new HintNode({});

class RootNode implements TypeNode {
  private readonly fields: Record<string, FieldHint>;
  constructor(fields: Record<string, FieldHint>) {
    this.fields = fields;
  }
  field(name: string): TypeNode {
    if (name === 'metadata') return new HintNode(TYPES.ObjectMeta ?? {});
    const h = this.fields[name];
    if (!h) return UNKNOWN;
    return new HintNode(h.type ? (TYPES[h.type] ?? {}) : {}, h);
  }
  elem(): TypeNode {
    return UNKNOWN;
  }
  listType(): ListType {
    return ATOMIC;
  }
  mergeKey(): string | undefined {
    return undefined;
  }
  mergesScalars(): boolean {
    return false;
  }
  retainKeys(): boolean {
    return false;
  }
  atomicMap(): boolean {
    return false;
  }
}

export function builtinTypeNode(kind: string): TypeNode {
  return new RootNode(ROOTS[kind] ?? {});
}

class SchemaNode implements TypeNode {
  private readonly s: Schema | undefined;
  private readonly isRoot: boolean;
  constructor(s: Schema | undefined, isRoot = false) {
    this.s = s;
    this.isRoot = isRoot;
  }
  field(name: string): TypeNode {
    if (this.isRoot && name === 'metadata') return new HintNode(TYPES.ObjectMeta ?? {});
    const s = this.s;
    if (!s) return new SchemaNode(undefined);
    const prop = s.properties?.[name] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    return new SchemaNode(prop);
  }
  elem(): TypeNode {
    const s = this.s;
    if (!s) return new SchemaNode(undefined);
    return new SchemaNode(s.items ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined));
  }
  listType(): ListType {
    const t = this.s?.['x-kubernetes-list-type'];
    if (t === 'set') return { kind: 'set' };
    if (t === 'map') return { kind: 'map', keys: this.s?.['x-kubernetes-list-map-keys'] ?? [] };
    return ATOMIC;
  }
  mergeKey(): string | undefined {
    const t = this.listType();
    return t.kind === 'map' ? t.keys[0] : undefined;
  }
  mergesScalars(): boolean {
    return this.listType().kind === 'set';
  }
  retainKeys(): boolean {
    return false;
  }
  atomicMap(): boolean {
    return this.s?.['x-kubernetes-map-type'] === 'atomic';
  }
}

export function schemaTypeNode(schema: Schema | undefined): TypeNode {
  return new SchemaNode(schema, true);
}

/** Defaults of list-map key fields: an item without `protocol` is keyed as TCP. */
export const KEY_DEFAULTS: Record<string, unknown> = { protocol: 'TCP' };
