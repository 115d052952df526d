// Ownership and naming shared by the workload controllers: the controller owner reference that
// garbage collection follows, and pods stamped from a template.
import { randomInt } from 'node:crypto';
import type { KubernetesObject, V1ObjectMeta, V1OwnerReference, V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';

/** Kubernetes' alphabet for generated name suffixes and hashes: no vowels, no look-alike digits. */
const ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

export function randomSuffix(length = 5): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHANUMS[randomInt(ALPHANUMS.length)];
  return out;
}

/** `rand.SafeEncodeString(fmt.Sprint(hash))`: each decimal digit of the hash becomes a safe letter. */
export function safeEncode(value: string): string {
  return [...value].map((c) => ALPHANUMS[c.charCodeAt(0) % ALPHANUMS.length]).join('');
}

export function fnv32a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** JSON with sorted keys, so equal objects hash equally whatever order their fields arrived in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Date) return v.toISOString();
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    return v;
  });
}

export function controllerRef(owner: { apiVersion?: string; kind?: string; metadata?: V1ObjectMeta }): V1OwnerReference {
  return {
    apiVersion: owner.apiVersion ?? '',
    kind: owner.kind ?? '',
    name: owner.metadata?.name ?? '',
    uid: owner.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function controllerOf(object: KubernetesObject): V1OwnerReference | undefined {
  return object.metadata?.ownerReferences?.find((ref) => ref.controller === true);
}

export function isControlledBy(object: KubernetesObject, owner: KubernetesObject): boolean {
  const ref = controllerOf(object);
  return ref !== undefined && ref.uid === owner.metadata?.uid;
}

export function podFromTemplate(
  template: V1PodTemplateSpec | undefined,
  owner: { apiVersion?: string; kind?: string; metadata?: V1ObjectMeta },
  name: string,
  extraLabels: Record<string, string> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: owner.metadata?.namespace ?? 'default',
      labels: { ...(template?.metadata?.labels ?? {}), ...extraLabels },
      annotations: { ...(template?.metadata?.annotations ?? {}) },
      ownerReferences: [controllerRef(owner)],
      ...(template?.metadata?.finalizers ? { finalizers: template.metadata.finalizers } : {}),
    },
    spec: structuredClone(template?.spec ?? { containers: [] }),
  };
}

export function toMillis(time: Date | string | undefined | null): number | undefined {
  if (time === undefined || time === null) return undefined;
  const ms = time instanceof Date ? time.getTime() : Date.parse(time);
  return Number.isNaN(ms) ? undefined : ms;
}

export function isTerminalPod(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Active as the workload controllers count it: neither finished nor being deleted. */
export function isActivePod(pod: V1Pod): boolean {
  return !isTerminalPod(pod) && !pod.metadata?.deletionTimestamp;
}

/** Exponential back-off: base, 2×base, 4×base … capped. `attempt` counts from 1. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number): number {
  if (attempt <= 0) return 0;
  return Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/**
 * Content for comparing what the agent would write with what the API holds: times to the second
 * (the API's precision), whether they are Dates or strings; nulls and undefined dropped.
 */
export function comparable(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null) return undefined;
    if (typeof v === 'string' && TIMESTAMP.test(v)) return new Date(Math.floor(Date.parse(v) / 1000) * 1000).toISOString();
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().filter((k) => o[k] !== null && o[k] !== undefined).map((k) => [k, o[k] instanceof Date ? (o[k] as Date).toISOString() : o[k]]));
    }
    return v;
  }) ?? '';
}

/** Now, to the second: Kubernetes timestamps carry no fractions. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000) * 1000;
}
