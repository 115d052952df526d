// DELETE and DELETE of a collection: preconditions, propagation policies (orphan, background,
// foreground finalizers), graceful deletion of running pods, namespaces that terminate first.
import type { Api } from './api.ts';
import type { DeleteOptions, ListOptions, WriteResult } from './api-options.ts';
import { ApiError, conflict, invalid, methodNotAllowed, notFound } from './errors.ts';
import { metaOf, obj, type JsonObject } from './json.ts';
import { sameIgnoringTimestamps } from './managedfields.ts';
import { nowTimestamp } from './object-meta.ts';
import { apiVersionOf, type ResourceInfo } from './resources.ts';

export function deleteObject(api: Api, res: ResourceInfo, namespace: string, name: string, options: DeleteOptions): WriteResult {
  const ns = res.namespaced ? namespace : '';
  const existing = api.store.get(res.storageKey, ns, name);
  if (!existing) throw notFound(res, name);
  const meta = obj(existing.metadata);
  const pre = options.preconditions ?? {};
  if (pre.uid !== undefined && pre.uid !== meta.uid) {
    throw conflict(res, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(meta.uid)}`);
  }
  if (pre.resourceVersion !== undefined && pre.resourceVersion !== meta.resourceVersion) {
    throw conflict(res, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(meta.resourceVersion)}`);
  }
  const policy = options.propagationPolicy ?? (options.orphanDependents === true ? 'Orphan' : 'Background');
  if (!['Orphan', 'Background', 'Foreground'].includes(policy)) {
    throw invalid('DeleteOptions', 'meta.k8s.io', '', [{ type: 'FieldValueNotSupported', field: 'propagationPolicy', value: policy, detail: 'supported values: "Foreground", "Background", "Orphan", nil' }]);
  }
  const next = structuredClone(existing);
  const nmeta = metaOf(next);
  const now = new Date();

  if (res.kind === 'Namespace') {
    if (nmeta.deletionTimestamp === undefined) {
      nmeta.deletionTimestamp = nowTimestamp(now);
      nmeta.deletionGracePeriodSeconds = 0;
      next.status = { ...obj(next.status), phase: 'Terminating' };
    }
    if (options.dryRun) return { object: api.external(res, next), status: 200, warnings: [] };
    const stored = sameIgnoringTimestamps(next, existing) ? existing : api.store.update(res.storageKey, next);
    return { object: api.external(res, stored), status: 200, warnings: [] };
  }

  let finalizers = ((nmeta.finalizers as string[] | undefined) ?? []).filter((f) => nmeta.deletionTimestamp !== undefined || (f !== 'orphan' && f !== 'foregroundDeletion'));
  if (nmeta.deletionTimestamp === undefined) {
    if (policy === 'Orphan') finalizers = [...finalizers, 'orphan'];
    if (policy === 'Foreground') finalizers = [...finalizers, 'foregroundDeletion'];
  }
  const graceful = podGracePeriod(res, existing, options);
  if (finalizers.length > 0 || graceful > 0) {
    if (nmeta.deletionTimestamp === undefined) {
      nmeta.deletionTimestamp = nowTimestamp(new Date(now.getTime() + graceful * 1000));
      nmeta.deletionGracePeriodSeconds = graceful;
      if (nmeta.generation !== undefined) nmeta.generation = Number(nmeta.generation) + 1;
    } else if (graceful < Number(nmeta.deletionGracePeriodSeconds ?? 0)) {
      nmeta.deletionTimestamp = nowTimestamp(new Date(now.getTime() + graceful * 1000));
      nmeta.deletionGracePeriodSeconds = graceful;
    }
    if (finalizers.length > 0) nmeta.finalizers = [...new Set(finalizers)];
    if (graceful > 0 || finalizers.length > 0) {
      if (options.dryRun) return { object: api.external(res, next), status: 200, warnings: [] };
      const stored = sameIgnoringTimestamps(next, existing) ? existing : api.store.update(res.storageKey, next);
      return { object: api.external(res, stored), status: 200, warnings: [] };
    }
  }
  if (options.dryRun) return { object: deletedResponse(api, res, existing), status: 200, warnings: [] };
  const removed = api.store.remove(res.storageKey, ns, name) ?? existing;
  api.afterRemove(res, removed);
  return { object: deletedResponse(api, res, removed), status: 200, warnings: [] };
}

/** Scheduled, running pods terminate gracefully: the kubelet deletes them when stopped. */
function podGracePeriod(res: ResourceInfo, pod: JsonObject, options: DeleteOptions): number {
  if (res.kind !== 'Pod' || res.group !== '') return 0;
  const phase = obj(pod.status).phase;
  if (!obj(pod.spec).nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
  const requested = options.gracePeriodSeconds ?? obj(pod.spec).terminationGracePeriodSeconds ?? 30;
  const grace = Number(requested);
  if (obj(pod.metadata).deletionTimestamp !== undefined && Number(obj(pod.metadata).deletionGracePeriodSeconds ?? 0) <= grace) {
    return Number(obj(pod.metadata).deletionGracePeriodSeconds ?? 0);
  }
  return Number.isFinite(grace) && grace > 0 ? grace : 0;
}

function deletedResponse(api: Api, res: ResourceInfo, removed: JsonObject): JsonObject {
  if (res.returnDeletedObject) return api.external(res, removed);
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { name: obj(removed.metadata).name, group: res.group, kind: res.plural, uid: obj(removed.metadata).uid },
  };
}

export function deleteCollection(api: Api, res: ResourceInfo, namespace: string | undefined, listOpts: ListOptions, options: DeleteOptions): JsonObject {
  if (!res.verbs.includes('deletecollection')) throw methodNotAllowed('deletecollection');
  const { items } = api.list(res, namespace, { ...listOpts, limit: 0 });
  const deleted: JsonObject[] = [];
  for (const item of items) {
    const m = obj(item.metadata);
    try {
      const r = deleteObject(api, res, String(m.namespace ?? ''), String(m.name), options);
      deleted.push(r.object.kind === 'Status' ? item : r.object);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
  }
  return { kind: res.listKind, apiVersion: apiVersionOf(res), metadata: { resourceVersion: String(api.store.resourceVersion) }, items: deleted };
}
