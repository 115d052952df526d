// core/v1 Events and events.k8s.io/v1 Events are one stored object in two shapes, as upstream:
// objects are stored in the core shape and converted for the events.k8s.io API.

type JsonObject = Record<string, unknown>;

const RENAMES: [core: string, eventsV1: string][] = [
  ['involvedObject', 'regarding'],
  ['related', 'related'],
  ['message', 'note'],
  ['reportingComponent', 'reportingController'],
  ['reportingInstance', 'reportingInstance'],
  ['eventTime', 'eventTime'],
  ['series', 'series'],
  ['action', 'action'],
  ['reason', 'reason'],
  ['type', 'type'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
];

export function eventToCore(e: JsonObject): JsonObject {
  const out: JsonObject = { apiVersion: 'v1', kind: 'Event', metadata: e.metadata };
  for (const [core, v1] of RENAMES) if (e[v1] !== undefined) out[core] = e[v1];
  return out;
}

export function eventFromCore(e: JsonObject): JsonObject {
  const out: JsonObject = { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: e.metadata };
  for (const [core, v1] of RENAMES) if (e[core] !== undefined) out[v1] = e[core];
  if (out.eventTime === undefined) out.eventTime = null;
  return out;
}

/** events.k8s.io field selector names map onto the stored (core) fields. */
export function coreEventField(field: string): string {
  if (field.startsWith('regarding.')) return `involvedObject.${field.slice('regarding.'.length)}`;
  if (field === 'reportingController') return 'reportingComponent';
  if (field === 'deprecatedSource') return 'source';
  return field;
}
