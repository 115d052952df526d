// The subresources with handlers of their own: scale (of Deployments, ReplicaSets and custom
// resources that declare one) and pods/binding.
import type { Api } from './api.ts';
import type { PatchType, WriteOptions, WriteResult } from './api-options.ts';
import { conflict, invalid, notFound, STALE_OBJECT_MESSAGE } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import { readPath, writePath } from './jsonpath.ts';
import { managerFor, nowTimestamp } from './object-meta.ts';
import { jsonMergePatch, jsonPatch } from './patch.ts';
import type { ResourceInfo } from './resources.ts';

export function getScale(api: Api, res: ResourceInfo, namespace: string, name: string): JsonObject {
  const scale = res.scale;
  if (!scale) throw notFound(res, name);
  const o = api.getStored(res, namespace, name);
  const meta = obj(o.metadata);
  const selector = scale.labelSelectorPath ? readPath(scale.labelSelectorPath, o) : undefined;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: meta.name, ...(res.namespaced ? { namespace: meta.namespace } : {}), uid: meta.uid, resourceVersion: meta.resourceVersion, creationTimestamp: meta.creationTimestamp },
    spec: { replicas: Number(readPath(scale.specReplicasPath, o) ?? 0) },
    status: { replicas: Number(readPath(scale.statusReplicasPath, o) ?? 0), ...(typeof selector === 'string' ? { selector } : {}) },
  };
}

export function updateScale(api: Api, res: ResourceInfo, namespace: string, name: string, scaleObj: JsonObject, opts: WriteOptions): WriteResult {
  const scale = res.scale;
  if (!scale) throw notFound(res, name);
  const existing = api.getStored(res, namespace, name);
  const rv = obj(scaleObj.metadata).resourceVersion;
  if (typeof rv === 'string' && rv !== '' && rv !== obj(existing.metadata).resourceVersion) throw conflict(res, name, STALE_OBJECT_MESSAGE);
  const replicas = obj(scaleObj.spec).replicas;
  if (typeof replicas !== 'number' || replicas < 0) {
    throw invalid('Scale', 'autoscaling', name, [{ type: 'FieldValueInvalid', field: 'spec.replicas', value: replicas, detail: 'must be greater than or equal to 0' }]);
  }
  const candidate = structuredClone(existing);
  writePath(scale.specReplicasPath, candidate, replicas);
  api.commitUpdate(res, existing, candidate, { ...opts, fieldManager: opts.fieldManager ?? managerFor(opts) }, undefined, undefined);
  return { object: getScale(api, res, namespace, name), status: 200, warnings: [] };
}

export function patchScale(api: Api, res: ResourceInfo, namespace: string, name: string, type: PatchType, body: unknown, opts: WriteOptions): WriteResult {
  const current = getScale(api, res, namespace, name);
  let patched: unknown;
  if (type === 'json') patched = jsonPatch(current, body);
  else if (type === 'merge' || type === 'strategic') patched = jsonMergePatch(current, body);
  else patched = jsonMergePatch(current, { spec: obj(obj(body).spec) });
  return updateScale(api, res, namespace, name, obj(patched), opts);
}

export function bindPod(api: Api, namespace: string, name: string, binding: JsonObject, res: ResourceInfo): JsonObject {
  const pod = api.getStored(res, namespace, name);
  const target = obj(binding.target);
  if (typeof target.name !== 'string' || target.name === '') {
    throw invalid('Binding', '', name, [{ type: 'FieldValueRequired', field: 'target.name', detail: '' }]);
  }
  if (obj(pod.spec).nodeName) throw conflict(res, name, `pod ${name} is already assigned to node "${String(obj(pod.spec).nodeName)}"`);
  if (obj(pod.metadata).deletionTimestamp !== undefined) throw conflict(res, name, `pod ${name} is being deleted, cannot be assigned to a host`);
  const next = structuredClone(pod);
  obj(next.spec).nodeName = target.name;
  const status = obj(next.status);
  next.status = status;
  const conditions = (Array.isArray(status.conditions) ? status.conditions : []).filter((c) => obj(c).type !== 'PodScheduled');
  status.conditions = [...conditions, { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: nowTimestamp() }];
  api.store.update(res.storageKey, next);
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };
}
