// meta.k8s.io/v1 Table responses, which `kubectl get` asks for: CRD printer columns, and
// columns close to kubectl's own for built-in kinds.
import { evaluateJsonPath, parseJsonPath } from './jsonpath.ts';
import type { ResourceInfo } from './resources.ts';

type JsonObject = Record<string, unknown>;

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

function arr(v: unknown): JsonObject[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

/** apimachinery's duration.HumanDuration, which `AGE` columns use. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24);
    const y = Math.floor(days / 365);
    const d = days % 365;
    return d === 0 ? `${y}y` : `${y}y${d}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(ts: unknown, now: number): string {
  if (typeof ts !== 'string') return '<unknown>';
  return humanDuration(now - Date.parse(ts));
}

const NAME_COLUMN: ColumnDefinition = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 };
const AGE_DESCRIPTION = 'CreationTimestamp is a timestamp representing the server time when this object was created.';

interface BuiltinColumns {
  columns: ColumnDefinition[];
  cells(o: JsonObject, now: number): unknown[];
  /** Events list the name last, as a wide column, instead of first */
  nameLast?: boolean;
}

function col(name: string, type = 'string', priority = 0, description = ''): ColumnDefinition {
  return { name, type, format: '', description, priority };
}

function condition(o: JsonObject, type: string): JsonObject | undefined {
  return arr(obj(o.status).conditions).find((c) => c.type === type);
}

function podStatusReason(pod: JsonObject): string {
  const status = obj(pod.status);
  let reason = typeof status.reason === 'string' ? status.reason : String(status.phase ?? 'Pending');
  for (const cs of arr(status.containerStatuses)) {
    const state = obj(cs.state);
    if (obj(state.waiting).reason) reason = String(obj(state.waiting).reason);
    else if (obj(state.terminated).reason) reason = String(obj(state.terminated).reason);
  }
  if (obj(pod.metadata).deletionTimestamp !== undefined) reason = 'Terminating';
  return reason;
}

function servicePorts(spec: JsonObject): string {
  const ports = arr(spec.ports).map((p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ''}/${String(p.protocol ?? 'TCP')}`);
  return ports.length ? ports.join(',') : '<none>';
}

const BUILTIN: Record<string, BuiltinColumns> = {
  Pod: {
    columns: [col('Ready', 'string', 0, 'The aggregate readiness state of this pod for accepting traffic.'), col('Status'), col('Restarts', 'string'), col('Age', 'string', 0, AGE_DESCRIPTION), col('IP', 'string', 1), col('Node', 'string', 1), col('Nominated Node', 'string', 1), col('Readiness Gates', 'string', 1)],
    cells: (o, now) => {
      const statuses = arr(obj(o.status).containerStatuses);
      const total = arr(obj(o.spec).containers).length;
      const ready = statuses.filter((s) => s.ready === true).length;
      const restarts = statuses.reduce((n, s) => n + (typeof s.restartCount === 'number' ? s.restartCount : 0), 0);
      return [`${ready}/${total}`, podStatusReason(o), restarts, age(obj(o.metadata).creationTimestamp, now), obj(o.status).podIP ?? '<none>', obj(o.spec).nodeName ?? '<none>', '<none>', '<none>'];
    },
  },
  Deployment: {
    columns: [col('Ready'), col('Up-to-date', 'integer'), col('Available', 'integer'), col('Age', 'string', 0, AGE_DESCRIPTION), col('Containers', 'string', 1), col('Images', 'string', 1), col('Selector', 'string', 1)],
    cells: (o, now) => {
      const s = obj(o.status);
      const containers = arr(obj(obj(obj(o.spec).template).spec).containers);
      return [`${Number(s.readyReplicas ?? 0)}/${Number(obj(o.spec).replicas ?? 0)}`, Number(s.updatedReplicas ?? 0), Number(s.availableReplicas ?? 0), age(obj(o.metadata).creationTimestamp, now), containers.map((c) => c.name).join(','), containers.map((c) => c.image).join(','), Object.entries(obj(obj(obj(o.spec).selector).matchLabels)).map(([k, v]) => `${k}=${String(v)}`).join(',')];
    },
  },
  ReplicaSet: {
    columns: [col('Desired', 'integer'), col('Current', 'integer'), col('Ready', 'integer'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [Number(obj(o.spec).replicas ?? 0), Number(obj(o.status).replicas ?? 0), Number(obj(o.status).readyReplicas ?? 0), age(obj(o.metadata).creationTimestamp, now)],
  },
  Job: {
    columns: [col('Status'), col('Completions'), col('Duration'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => {
      const s = obj(o.status);
      const status = condition(o, 'Complete')?.status === 'True' ? 'Complete' : condition(o, 'Failed')?.status === 'True' ? 'Failed' : obj(o.metadata).deletionTimestamp ? 'Terminating' : 'Running';
      const start = typeof s.startTime === 'string' ? Date.parse(s.startTime) : undefined;
      const end = typeof s.completionTime === 'string' ? Date.parse(s.completionTime) : now;
      return [status, `${Number(s.succeeded ?? 0)}/${Number(obj(o.spec).completions ?? 1)}`, start === undefined ? '' : humanDuration(end - start), age(obj(o.metadata).creationTimestamp, now)];
    },
  },
  Service: {
    columns: [col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), col('Age', 'string', 0, AGE_DESCRIPTION), col('Selector', 'string', 1)],
    cells: (o, now) => {
      const spec = obj(o.spec);
      return [spec.type ?? 'ClusterIP', spec.clusterIP ?? '<none>', '<none>', servicePorts(spec), age(obj(o.metadata).creationTimestamp, now), Object.entries(obj(spec.selector)).map(([k, v]) => `${k}=${String(v)}`).join(',') || '<none>'];
    },
  },
  ConfigMap: {
    columns: [col('Data', 'integer'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [Object.keys(obj(o.data)).length + Object.keys(obj(o.binaryData)).length, age(obj(o.metadata).creationTimestamp, now)],
  },
  Secret: {
    columns: [col('Type'), col('Data', 'integer'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [o.type ?? 'Opaque', Object.keys(obj(o.data)).length, age(obj(o.metadata).creationTimestamp, now)],
  },
  Namespace: {
    columns: [col('Status'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [obj(o.status).phase ?? 'Active', age(obj(o.metadata).creationTimestamp, now)],
  },
  Node: {
    columns: [col('Status'), col('Roles'), col('Age', 'string', 0, AGE_DESCRIPTION), col('Version')],
    cells: (o, now) => [condition(o, 'Ready')?.status === 'True' ? 'Ready' : 'NotReady', '<none>', age(obj(o.metadata).creationTimestamp, now), obj(obj(o.status).nodeInfo).kubeletVersion ?? ''],
  },
  PersistentVolumeClaim: {
    columns: [col('Status'), col('Volume'), col('Capacity'), col('Access Modes'), col('StorageClass'), col('VolumeAttributesClass'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => {
      const s = obj(o.status);
      const modes = (Array.isArray(s.accessModes) ? s.accessModes : []).map((m) => ({ ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' })[String(m)] ?? String(m));
      return [s.phase ?? 'Pending', obj(o.spec).volumeName ?? '', obj(s.capacity).storage ?? '', modes.join(','), obj(o.spec).storageClassName ?? '<unset>', '<unset>', age(obj(o.metadata).creationTimestamp, now)];
    },
  },
  ServiceAccount: {
    columns: [col('Secrets', 'integer'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [arr(o.secrets).length, age(obj(o.metadata).creationTimestamp, now)],
  },
  Lease: {
    columns: [col('Holder'), col('Age', 'string', 0, AGE_DESCRIPTION)],
    cells: (o, now) => [obj(o.spec).holderIdentity ?? '', age(obj(o.metadata).creationTimestamp, now)],
  },
  Event: {
    nameLast: true,
    columns: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message'), { ...NAME_COLUMN, priority: 1 }],
    cells: (o, now) => {
      const io = obj(o.involvedObject ?? o.regarding);
      const last = o.lastTimestamp ?? o.eventTime ?? obj(o.metadata).creationTimestamp;
      return [age(last, now), o.type ?? '', o.reason ?? '', `${String(io.kind ?? '').toLowerCase()}/${String(io.name ?? '')}`, o.message ?? o.note ?? '', obj(o.metadata).name];
    },
  },
  CustomResourceDefinition: {
    columns: [col('Created At', 'date')],
    cells: (o) => [obj(o.metadata).creationTimestamp ?? ''],
  },
};

function cellForJson(type: string, values: unknown[], now: number): unknown {
  if (values.length === 0) return null;
  const v = values.length === 1 ? values[0] : values;
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(',');
  switch (type) {
    case 'date':
      return typeof v === 'string' ? age(v, now) : null;
    case 'integer':
      return typeof v === 'number' ? v : null;
    case 'number':
      return typeof v === 'number' ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    default:
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
}

export interface TableSpec {
  columns: ColumnDefinition[];
  cells(o: JsonObject, now: number): unknown[];
  nameLast?: boolean;
}

export function tableSpec(res: ResourceInfo): TableSpec {
  if (res.crd && res.crd.printerColumns.length > 0) {
    const defs = res.crd.printerColumns;
    const paths = defs.map((c) => {
      try {
        return parseJsonPath(c.jsonPath);
      } catch {
        return undefined;
      }
    });
    return {
      columns: defs.map((c) => ({ name: c.name, type: c.type === 'date' ? 'date' : c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 })),
      cells: (o, now) => defs.map((c, i) => {
        const p = paths[i];
        return p ? cellForJson(c.type, evaluateJsonPath(p, o), now) : null;
      }),
    };
  }
  if (res.crd) {
    return {
      columns: [{ name: 'Age', type: 'date', format: '', description: AGE_DESCRIPTION, priority: 0 }],
      cells: (o, now) => [age(obj(o.metadata).creationTimestamp, now)],
    };
  }
  const b = BUILTIN[res.kind];
  if (b) return b;
  return {
    columns: [{ name: 'Age', type: 'string', format: '', description: AGE_DESCRIPTION, priority: 0 }],
    cells: (o, now) => [age(obj(o.metadata).creationTimestamp, now)],
  };
}

/** Rows carry PartialObjectMetadata, as the apiserver sends by default (includeObject=Metadata). */
export function toTable(res: ResourceInfo, items: JsonObject[], listMeta: JsonObject, includeObject: string, now: number): JsonObject {
  const spec = tableSpec(res);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: spec.nameLast ? spec.columns : [NAME_COLUMN, ...spec.columns],
    rows: items.map((o) => ({
      cells: spec.nameLast ? spec.cells(o, now) : [obj(o.metadata).name, ...spec.cells(o, now)],
      object:
        includeObject === 'None'
          ? undefined
          : includeObject === 'Object'
            ? o
            : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
