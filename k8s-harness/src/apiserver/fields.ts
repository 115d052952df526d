// Which fields each resource can be selected by (`fieldSelector=`), and their values.
import { badRequest } from './errors.ts';
import { coreEventField } from './events.ts';
import { readPath } from './jsonpath.ts';
import type { ResourceInfo } from './resources.ts';
import type { FieldRequirement } from './selectors.ts';

type JsonObject = Record<string, unknown>;

function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

function s(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}

const EXTRA: Record<string, (o: JsonObject) => Record<string, string>> = {
  Pod: (o) => ({
    'spec.nodeName': s(obj(o.spec).nodeName),
    'spec.restartPolicy': s(obj(o.spec).restartPolicy),
    'spec.schedulerName': s(obj(o.spec).schedulerName),
    'spec.serviceAccountName': s(obj(o.spec).serviceAccountName),
    'spec.hostNetwork': s(obj(o.spec).hostNetwork ?? false),
    'status.phase': s(obj(o.status).phase),
    'status.podIP': s(obj(o.status).podIP),
    'status.nominatedNodeName': s(obj(o.status).nominatedNodeName),
  }),
  Event: (o) => {
    const io = obj(o.involvedObject);
    return {
      'involvedObject.kind': s(io.kind),
      'involvedObject.namespace': s(io.namespace),
      'involvedObject.name': s(io.name),
      'involvedObject.uid': s(io.uid),
      'involvedObject.apiVersion': s(io.apiVersion),
      'involvedObject.resourceVersion': s(io.resourceVersion),
      'involvedObject.fieldPath': s(io.fieldPath),
      reason: s(o.reason),
      reportingComponent: s(o.reportingComponent),
      source: s(obj(o.source).component),
      type: s(o.type),
    };
  },
  Secret: (o) => ({ type: s(o.type) }),
  Namespace: (o) => ({ 'status.phase': s(obj(o.status).phase) }),
  Node: (o) => ({ 'spec.unschedulable': s(obj(o.spec).unschedulable ?? false) }),
  Job: (o) => ({ 'status.successful': s(obj(o.status).succeeded ?? 0) }),
  ReplicaSet: (o) => ({ 'status.replicas': s(obj(o.status).replicas ?? 0) }),
  Service: (o) => ({ 'spec.clusterIP': s(obj(o.spec).clusterIP), 'spec.type': s(obj(o.spec).type) }),
};

/** Field values of a stored object, by the names field selectors use. */
export function objectFields(res: ResourceInfo, o: JsonObject): Record<string, string> {
  const meta = obj(o.metadata);
  const fields: Record<string, string> = { 'metadata.name': s(meta.name) };
  if (res.namespaced) fields['metadata.namespace'] = s(meta.namespace);
  const extra = res.crd ? undefined : EXTRA[res.kind];
  if (extra) Object.assign(fields, extra(o));
  for (const path of res.crd?.selectableFields ?? []) fields[path.replace(/^\./, '')] = s(readPath(path, o));
  return fields;
}

/** Rewrites requirements to stored field names and rejects unsupported ones (400, as upstream). */
export function normaliseFieldRequirements(res: ResourceInfo, reqs: FieldRequirement[]): FieldRequirement[] {
  const probe = objectFields(res, {});
  return reqs.map((r) => {
    const field = res.group === 'events.k8s.io' ? coreEventField(r.field) : r.field;
    if (!(field in probe)) throw badRequest(`field label not supported: ${r.field}`);
    return { ...r, field };
  });
}
