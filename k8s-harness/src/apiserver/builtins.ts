// Kind-specific behaviour of built-in resources: the defaults the apiserver fills in, what
// create and update reset, and the validation rules controllers and clients run into.
import { randomUUID } from 'node:crypto';
import type { FieldError } from './errors.ts';
import { labelSelectorRequirements, matchesLabels } from './selectors.ts';

type JsonObject = Record<string, unknown>;

function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

function ensureObj(parent: JsonObject, key: string): JsonObject {
  const v = parent[key];
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as JsonObject;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

function setDefault(o: JsonObject, key: string, value: unknown): void {
  if (o[key] === undefined || o[key] === null) o[key] = value;
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as JsonObject).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

function defaultContainer(c: JsonObject): void {
  setDefault(c, 'terminationMessagePath', '/dev/termination-log');
  setDefault(c, 'terminationMessagePolicy', 'File');
  if (c.imagePullPolicy === undefined) {
    const image = typeof c.image === 'string' ? c.image : '';
    const lastPart = image.split('/').pop() ?? '';
    const tagged = lastPart.includes(':') || image.includes('@');
    const latest = !tagged || lastPart.endsWith(':latest');
    c.imagePullPolicy = latest ? 'Always' : 'IfNotPresent';
  }
  setDefault(c, 'resources', {});
  if (Array.isArray(c.ports)) for (const p of c.ports) setDefault(obj(p), 'protocol', 'TCP');
}

export function defaultPodSpec(spec: JsonObject): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'securityContext', {});
  setDefault(spec, 'schedulerName', 'default-scheduler');
  setDefault(spec, 'enableServiceLinks', true);
  if (spec.serviceAccountName === undefined && typeof spec.serviceAccount === 'string') spec.serviceAccountName = spec.serviceAccount;
  for (const list of ['containers', 'initContainers']) {
    if (Array.isArray(spec[list])) for (const c of spec[list] as unknown[]) defaultContainer(obj(c));
  }
}

function defaultTemplate(spec: JsonObject): void {
  const template = obj(spec.template);
  if (spec.template !== undefined) defaultPodSpec(ensureObj(template, 'spec'));
}

let clusterIpCounter = 10;

/** Where Service ClusterIPs come from unless told otherwise; the node agent's default range too. */
export const DEFAULT_SERVICE_CLUSTER_IP_RANGE = '127.96.0.0/16';

export interface StrategyContext {
  /** all current objects of a storage key, for allocations that must not collide */
  list(storageKey: string): JsonObject[];
  /** the first two octets of the /16 Service ClusterIPs come from, e.g. `127.96` */
  serviceIpPrefix: string;
}

/**
 * ClusterIPs come from a loopback /16 (not 10.96/12 as on real clusters): Linux routes all of
 * 127.0.0.0/8 to lo, so the node agent can listen on a Service's own spec.clusterIP.
 */
function allocateClusterIP(ctx: StrategyContext): string {
  const used = new Set(ctx.list('services').map((s) => obj(s.spec).clusterIP));
  for (;;) {
    clusterIpCounter += 1;
    const ip = `${ctx.serviceIpPrefix}.${Math.floor(clusterIpCounter / 254) % 256}.${(clusterIpCounter % 254) + 1}`;
    if (!used.has(ip)) return ip;
  }
}

/** `127.96.0.0/16` → `127.96`; only loopback /16 ranges are usable here. */
export function serviceIpPrefix(range: string): string {
  const match = /^127\.([0-9]{1,3})\.0\.0\/16$/.exec(range);
  if (!match || Number(match[1]) > 255) throw new Error(`the Service ClusterIP range must be a /16 inside 127.0.0.0/8, got ${range}`);
  return `127.${match[1]}`;
}

/** Defaults applied on every decode of a request body (create and update alike). */
export function applyBuiltinDefaults(kind: string, o: JsonObject): void {
  const spec = obj(o.spec);
  switch (kind) {
    case 'Pod':
      if (o.spec !== undefined) defaultPodSpec(spec);
      break;
    case 'Deployment':
      setDefault(spec, 'replicas', 1);
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'progressDeadlineSeconds', 600);
      if (spec.strategy === undefined) spec.strategy = { type: 'RollingUpdate' };
      if (obj(spec.strategy).type === 'RollingUpdate') setDefault(obj(spec.strategy), 'rollingUpdate', { maxSurge: '25%', maxUnavailable: '25%' });
      defaultTemplate(spec);
      break;
    case 'ReplicaSet':
    case 'StatefulSet':
      setDefault(spec, 'replicas', 1);
      defaultTemplate(spec);
      break;
    case 'DaemonSet':
      if (spec.updateStrategy === undefined) spec.updateStrategy = {};
      setDefault(obj(spec.updateStrategy), 'type', 'RollingUpdate');
      if (obj(spec.updateStrategy).type === 'RollingUpdate') {
        setDefault(obj(spec.updateStrategy), 'rollingUpdate', {});
        setDefault(obj(obj(spec.updateStrategy).rollingUpdate), 'maxUnavailable', 1);
        setDefault(obj(obj(spec.updateStrategy).rollingUpdate), 'maxSurge', 0);
      }
      setDefault(spec, 'revisionHistoryLimit', 10);
      defaultTemplate(spec);
      break;
    case 'Job':
      if (spec.completions === undefined && spec.parallelism === undefined) spec.completions = 1;
      setDefault(spec, 'parallelism', 1);
      setDefault(spec, 'backoffLimit', 6);
      setDefault(spec, 'completionMode', 'NonIndexed');
      setDefault(spec, 'suspend', false);
      setDefault(spec, 'podReplacementPolicy', 'TerminatingOrFailed');
      defaultTemplate(spec);
      break;
    case 'Service': {
      setDefault(spec, 'type', 'ClusterIP');
      setDefault(spec, 'sessionAffinity', 'None');
      setDefault(spec, 'internalTrafficPolicy', 'Cluster');
      if (Array.isArray(spec.ports)) {
        for (const p of spec.ports) {
          const port = obj(p);
          setDefault(port, 'protocol', 'TCP');
          setDefault(port, 'targetPort', port.port);
        }
      }
      break;
    }
    case 'Secret':
      setDefault(o, 'type', 'Opaque');
      if (o.stringData !== undefined) {
        const data = ensureObj(o, 'data');
        for (const [k, v] of Object.entries(obj(o.stringData))) data[k] = Buffer.from(String(v)).toString('base64');
        delete o.stringData;
      }
      break;
    case 'PersistentVolumeClaim':
      setDefault(spec, 'volumeMode', 'Filesystem');
      break;
    case 'Namespace':
      if (o.spec === undefined || !Array.isArray(spec.finalizers)) o.spec = { ...spec, finalizers: ['kubernetes'] };
      break;
  }
  if (kind === 'Namespace') {
    const meta = ensureObj(o, 'metadata');
    const labels = ensureObj(meta, 'labels');
    if (typeof meta.name === 'string') labels['kubernetes.io/metadata.name'] = meta.name;
  }
}

/** Create-time changes: status a client may not set, allocations, generated selectors. */
export function prepareBuiltinCreate(kind: string, o: JsonObject, ctx: StrategyContext): void {
  const spec = obj(o.spec);
  switch (kind) {
    case 'Pod':
      o.status = { phase: 'Pending', qosClass: 'BestEffort' };
      if (spec.serviceAccountName === undefined) spec.serviceAccountName = 'default';
      spec.serviceAccount = spec.serviceAccountName;
      setDefault(spec, 'priority', 0);
      break;
    case 'Namespace':
      o.status = { phase: 'Active' };
      break;
    case 'PersistentVolumeClaim':
      o.status = { phase: 'Pending' };
      break;
    case 'Service':
      o.status = { loadBalancer: {} };
      if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = allocateClusterIP(ctx);
      if (spec.clusterIP !== 'None') spec.clusterIPs = [spec.clusterIP];
      setDefault(spec, 'ipFamilies', ['IPv4']);
      setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
      break;
    case 'Job': {
      if (spec.manualSelector !== true) {
        const uid = String(obj(o.metadata).uid ?? randomUUID());
        const name = String(obj(o.metadata).name ?? '');
        spec.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
        const template = ensureObj(spec, 'template');
        const labels = ensureObj(ensureObj(template, 'metadata'), 'labels');
        Object.assign(labels, { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': name, 'controller-uid': uid, 'job-name': name });
      }
      o.status = {};
      break;
    }
    case 'Node':
      // kubelets register Nodes with their status in the create request
      break;
    default:
      if (['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'CronJob', 'PodDisruptionBudget', 'Ingress', 'PersistentVolume'].includes(kind)) o.status = {};
  }
}

const IMMUTABLE_POD_CHANGE = 'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

function mutablePodSpecView(spec: JsonObject): JsonObject {
  const copy = structuredClone(spec);
  for (const list of ['containers', 'initContainers']) {
    if (Array.isArray(copy[list])) for (const c of copy[list] as unknown[]) delete obj(c).image;
  }
  delete copy.activeDeadlineSeconds;
  delete copy.tolerations;
  delete copy.terminationGracePeriodSeconds;
  return copy;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function validateContainers(spec: JsonObject, path: string, errors: FieldError[]): void {
  const containers = spec.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    errors.push({ type: 'FieldValueRequired', field: `${path}.containers`, detail: '' });
    return;
  }
  const names = new Set<string>();
  containers.forEach((c, i) => {
    const container = obj(c);
    const name = container.name;
    if (typeof name !== 'string' || name === '') errors.push({ type: 'FieldValueRequired', field: `${path}.containers[${i}].name`, detail: '' });
    else if (!DNS1123_LABEL.test(name)) errors.push({ type: 'FieldValueInvalid', field: `${path}.containers[${i}].name`, value: name, detail: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')" });
    else if (names.has(name)) errors.push({ type: 'FieldValueDuplicate', field: `${path}.containers[${i}].name`, value: name, detail: '' });
    if (typeof name === 'string') names.add(name);
    if (typeof container.image !== 'string' || container.image === '') errors.push({ type: 'FieldValueRequired', field: `${path}.containers[${i}].image`, detail: '' });
  });
}

function validateSelectorMatchesTemplate(spec: JsonObject, errors: FieldError[]): void {
  if (spec.selector === undefined) {
    errors.push({ type: 'FieldValueRequired', field: 'spec.selector', detail: '' });
    return;
  }
  const reqs = labelSelectorRequirements(spec.selector) ?? [];
  if (reqs.length === 0) errors.push({ type: 'FieldValueInvalid', field: 'spec.selector', value: spec.selector, detail: 'empty selector is invalid for deployment' });
  const labels = obj(obj(obj(spec.template).metadata).labels) as Record<string, string>;
  if (!matchesLabels(reqs, labels)) errors.push({ type: 'FieldValueInvalid', field: 'spec.template.metadata.labels', value: labels, detail: '`selector` does not match template `labels`' });
}

/** Validation of built-in kinds; `old` is set on update. */
export function validateBuiltin(kind: string, o: JsonObject, old: JsonObject | undefined): FieldError[] {
  const errors: FieldError[] = [];
  const spec = obj(o.spec);
  switch (kind) {
    case 'Pod':
      validateContainers(spec, 'spec', errors);
      if (old && stable(mutablePodSpecView(spec)) !== stable(mutablePodSpecView(obj(old.spec)))) {
        errors.push({ type: 'FieldValueForbidden', field: 'spec', detail: IMMUTABLE_POD_CHANGE });
      }
      break;
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
    case 'DaemonSet':
      validateSelectorMatchesTemplate(spec, errors);
      validateContainers(obj(obj(spec.template).spec), 'spec.template.spec', errors);
      if (typeof spec.replicas === 'number' && spec.replicas < 0) errors.push({ type: 'FieldValueInvalid', field: 'spec.replicas', value: spec.replicas, detail: 'must be greater than or equal to 0' });
      if (old && stable(spec.selector) !== stable(obj(old.spec).selector)) errors.push({ type: 'FieldValueInvalid', field: 'spec.selector', value: spec.selector, detail: 'field is immutable' });
      break;
    case 'Job': {
      const templateSpec = obj(obj(spec.template).spec);
      validateContainers(templateSpec, 'spec.template.spec', errors);
      if (templateSpec.restartPolicy !== 'OnFailure' && templateSpec.restartPolicy !== 'Never') {
        errors.push({ type: 'FieldValueRequired', field: 'spec.template.spec.restartPolicy', detail: 'valid values: "OnFailure", "Never"' });
      }
      if (old) {
        if (stable(spec.template) !== stable(obj(old.spec).template)) errors.push({ type: 'FieldValueInvalid', field: 'spec.template', value: spec.template, detail: 'field is immutable' });
        if (stable(spec.selector) !== stable(obj(old.spec).selector)) errors.push({ type: 'FieldValueInvalid', field: 'spec.selector', value: spec.selector, detail: 'field is immutable' });
        if (spec.completions !== obj(old.spec).completions) errors.push({ type: 'FieldValueInvalid', field: 'spec.completions', value: spec.completions, detail: 'field is immutable' });
      }
      break;
    }
    case 'Service': {
      const ports = Array.isArray(spec.ports) ? spec.ports.map(obj) : [];
      if (ports.length === 0 && spec.clusterIP !== 'None' && spec.type !== 'ExternalName') errors.push({ type: 'FieldValueRequired', field: 'spec.ports', detail: '' });
      ports.forEach((p, i) => {
        if (typeof p.port !== 'number') errors.push({ type: 'FieldValueRequired', field: `spec.ports[${i}].port`, detail: '' });
        else if (p.port < 1 || p.port > 65535) errors.push({ type: 'FieldValueInvalid', field: `spec.ports[${i}].port`, value: p.port, detail: 'must be between 1 and 65535, inclusive' });
        if (ports.length > 1 && !p.name) errors.push({ type: 'FieldValueRequired', field: `spec.ports[${i}].name`, detail: '' });
      });
      if (old && obj(old.spec).clusterIP !== undefined && spec.clusterIP !== obj(old.spec).clusterIP) {
        errors.push({ type: 'FieldValueInvalid', field: 'spec.clusterIPs[0]', value: spec.clusterIP, detail: 'may not change once set' });
      }
      break;
    }
    case 'ConfigMap':
    case 'Secret':
      for (const field of ['data', 'binaryData']) {
        for (const key of Object.keys(obj(o[field]))) {
          if (!/^[-._a-zA-Z0-9]+$/.test(key)) errors.push({ type: 'FieldValueInvalid', field: `${field}[${key}]`, value: key, detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')" });
        }
      }
      if (old && old.immutable === true) {
        if (stable(o.data) !== stable(old.data) || stable(o.binaryData) !== stable(old.binaryData)) errors.push({ type: 'FieldValueForbidden', field: 'data', detail: 'field is immutable when `immutable` is set' });
        if (o.immutable !== true) errors.push({ type: 'FieldValueForbidden', field: 'immutable', detail: 'field is immutable when `immutable` is set' });
      }
      if (kind === 'Secret' && old && o.type !== old.type) errors.push({ type: 'FieldValueInvalid', field: 'type', value: o.type, detail: 'field is immutable' });
      break;
    case 'Lease':
      break;
  }
  return errors;
}

/** Resource names: Namespaces and Services are DNS labels, everything else DNS subdomains. */
export function validateName(kind: string, name: string): string | undefined {
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (kind === 'Namespace') {
    if (name.length > 63 || !DNS1123_LABEL.test(name)) return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    return undefined;
  }
  if (kind === 'Service') {
    if (name.length > 63 || !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    return undefined;
  }
  if (kind === 'Role' || kind === 'ClusterRole' || kind === 'RoleBinding' || kind === 'ClusterRoleBinding' || kind === 'Event') {
    return name.includes('/') || name === '.' || name === '..' ? `may not contain '/'` : undefined;
  }
  if (name.length > 253 || !subdomain.test(name)) return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  return undefined;
}

/** Built-in kinds whose create keeps the status the client sent (kubelets registering Nodes). */
export function keepsStatusOnCreate(kind: string): boolean {
  return kind === 'Node' || kind === 'Event';
}

/** Kinds whose metadata.generation tracks spec changes (others leave it unset, as upstream). */
export const GENERATION_KINDS = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'PodDisruptionBudget', 'Ingress', 'NetworkPolicy', 'CustomResourceDefinition']);
