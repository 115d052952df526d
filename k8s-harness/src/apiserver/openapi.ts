// OpenAPI documents. Clients use them for three things: whether the server validates fields
// itself (a PATCH operation tagged with the kind's x-kubernetes-group-version-kind and a
// `fieldValidation` parameter makes kubectl and helm send fieldValidation=Strict and skip
// client-side validation), `kubectl explain` (schemas tagged with their kind), and patch
// strategies. Only custom resources get schemas: built-in kinds carry none, so kubectl falls
// back to its compiled-in types for strategic merge patches, which is what it would compute
// from the real schemas too.
import { createHash } from 'node:crypto';
import { SERVER_VERSION } from './discovery.ts';
import type { ResourceRegistry } from './registry.ts';
import type { ResourceInfo } from './resources.ts';
import type { Schema } from './schema.ts';

type JsonObject = Record<string, unknown>;

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const LIST_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta';

const OBJECT_META_SCHEMA: Schema = {
  description: 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
  type: 'object',
  properties: {
    name: { type: 'string', description: 'Name must be unique within a namespace.' },
    generateName: { type: 'string', description: 'GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.' },
    namespace: { type: 'string', description: 'Namespace defines the space within which each name must be unique.' },
    uid: { type: 'string', description: 'UID is the unique in time and space value for this object.' },
    resourceVersion: { type: 'string', description: 'An opaque value that represents the internal version of this object.' },
    generation: { type: 'integer', format: 'int64', description: 'A sequence number representing a specific generation of the desired state.' },
    creationTimestamp: { type: 'string', format: 'date-time', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' },
    deletionTimestamp: { type: 'string', format: 'date-time', description: 'DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.' },
    deletionGracePeriodSeconds: { type: 'integer', format: 'int64', description: 'Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.' },
    labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'Map of string keys and values that can be used to organize and categorize (scope and select) objects.' },
    annotations: { type: 'object', additionalProperties: { type: 'string' }, description: 'Annotations is an unstructured key value map stored with a resource.' },
    finalizers: { type: 'array', items: { type: 'string' }, description: 'Must be empty before the object is deleted from the registry.' },
    ownerReferences: { type: 'array', items: { type: 'object' }, description: 'List of objects depended by this object.' },
    managedFields: { type: 'array', items: { type: 'object' }, description: 'ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.' },
  },
};

const LIST_META_SCHEMA: Schema = {
  description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.',
  type: 'object',
  properties: {
    resourceVersion: { type: 'string' },
    continue: { type: 'string' },
    remainingItemCount: { type: 'integer', format: 'int64' },
  },
};

function reverseDomain(group: string): string {
  return group.split('.').reverse().join('.');
}

export function schemaName(r: ResourceInfo, suffix = ''): string {
  const prefix = r.group ? reverseDomain(r.group) : 'io.k8s.api.core';
  return `${prefix}.${r.version}.${r.kind}${suffix}`;
}

function gvk(r: ResourceInfo): JsonObject {
  return { group: r.group, version: r.version, kind: r.kind };
}

function withRefs(s: Schema, refBase: string): JsonObject {
  const copy = structuredClone(s) as JsonObject;
  const props = (copy.properties ?? {}) as JsonObject;
  copy.properties = {
    apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.' },
    kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to.' },
    ...props,
    metadata: { description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", allOf: [{ $ref: `${refBase}${OBJECT_META}` }] },
  };
  copy.type = 'object';
  return copy;
}

interface Flavour {
  refBase: string;
  param(name: string, where: 'query' | 'path', description: string): JsonObject;
  response(ref: string): JsonObject;
  body(ref: string): JsonObject;
}

const V3: Flavour = {
  refBase: '#/components/schemas/',
  param: (name, where, description) => ({ name, in: where, description, ...(where === 'path' ? { required: true } : {}), schema: { type: 'string', uniqueItems: true } }),
  response: (ref) => ({ '200': { description: 'OK', content: { 'application/json': { schema: { $ref: ref } }, 'application/yaml': { schema: { $ref: ref } } } } }),
  body: (ref) => ({ requestBody: { content: { '*/*': { schema: { $ref: ref } } }, required: true } }),
};

const V2: Flavour = {
  refBase: '#/definitions/',
  param: (name, where, description) => ({ name, in: where, description, type: 'string', uniqueItems: true, ...(where === 'path' ? { required: true } : {}) }),
  response: (ref) => ({ '200': { description: 'OK', schema: { $ref: ref } } }),
  body: () => ({}),
};

function writeParams(f: Flavour): JsonObject[] {
  return [
    f.param('dryRun', 'query', 'When present, indicates that modifications should not be persisted.'),
    f.param('fieldManager', 'query', 'fieldManager is a name associated with the actor or entity that is making these changes.'),
    f.param('fieldValidation', 'query', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.'),
  ];
}

function pathsFor(r: ResourceInfo, f: Flavour): JsonObject {
  const root = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const collection = r.namespaced ? `${root}/namespaces/{namespace}/${r.plural}` : `${root}/${r.plural}`;
  const item = `${collection}/{name}`;
  const ref = `${f.refBase}${schemaName(r)}`;
  const listRef = `${f.refBase}${schemaName(r, 'List')}`;
  const common = r.namespaced ? [f.param('namespace', 'path', 'object name and auth scope, such as for teams and projects')] : [];
  const op = (action: string, verb: string, extra: JsonObject = {}): JsonObject => ({
    tags: [r.group ? `${r.group.replace(/\./g, '_')}_${r.version}` : `core_${r.version}`],
    operationId: `${verb}${r.namespaced ? 'Namespaced' : ''}${r.kind}`,
    description: `${verb} ${r.kind}`,
    responses: f.response(ref),
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk(r),
    ...extra,
  });
  // A virtual resource (TokenReview) has only its create operation upstream. The PATCH added here
  // (answered 405) is what tells kubectl the server validates fields itself: otherwise it would
  // validate on its side with the OpenAPI v2 protobuf document, which this server does not serve.
  if (r.virtual) {
    return {
      [collection]: {
        post: op('post', 'create', { parameters: writeParams(f), ...f.body(ref) }),
        patch: op('patch', 'patch', { parameters: writeParams(f), ...f.body(ref) }),
        parameters: common,
      },
    };
  }
  const patchParams = [...writeParams(f), f.param('force', 'query', 'Force is going to "force" Apply requests.')];
  const paths: JsonObject = {
    [collection]: {
      get: op('list', 'list', { responses: f.response(listRef) }),
      post: op('post', 'create', { parameters: writeParams(f), ...f.body(ref) }),
      delete: op('deletecollection', 'deletecollection'),
      parameters: common,
    },
    [item]: {
      get: op('get', 'read'),
      put: op('put', 'replace', { parameters: writeParams(f), ...f.body(ref) }),
      patch: op('patch', 'patch', { parameters: patchParams, ...f.body(ref) }),
      delete: op('delete', 'delete'),
      parameters: [f.param('name', 'path', `name of the ${r.kind}`), ...common],
    },
  };
  if (r.hasStatus) {
    paths[`${item}/status`] = {
      get: op('get', 'read', { operationId: `read${r.namespaced ? 'Namespaced' : ''}${r.kind}Status` }),
      put: op('put', 'replace', { operationId: `replace${r.namespaced ? 'Namespaced' : ''}${r.kind}Status`, parameters: writeParams(f) }),
      patch: op('patch', 'patch', { operationId: `patch${r.namespaced ? 'Namespaced' : ''}${r.kind}Status`, parameters: patchParams }),
      parameters: [f.param('name', 'path', `name of the ${r.kind}`), ...common],
    };
  }
  return paths;
}

function schemasFor(r: ResourceInfo, f: Flavour): JsonObject {
  if (!r.crd?.compiled) return {};
  const s = withRefs(r.crd.compiled.schema, f.refBase);
  s['x-kubernetes-group-version-kind'] = [gvk(r)];
  const list = {
    description: `${r.kind}List is a list of ${r.kind}`,
    type: 'object',
    required: ['items'],
    properties: {
      apiVersion: { type: 'string' },
      items: { type: 'array', items: { $ref: `${f.refBase}${schemaName(r)}` }, description: `List of ${r.plural}.` },
      kind: { type: 'string' },
      metadata: { allOf: [{ $ref: `${f.refBase}${LIST_META}` }] },
    },
    'x-kubernetes-group-version-kind': [{ ...gvk(r), kind: r.listKind }],
  };
  return { [schemaName(r)]: s, [schemaName(r, 'List')]: list };
}

function groupVersionPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

export function openapiV3GroupVersion(registry: ResourceRegistry, group: string, version: string): JsonObject | undefined {
  const resources = registry.resourcesOf(group, version);
  if (resources.length === 0) return undefined;
  let paths: JsonObject = {};
  let schemas: JsonObject = { [OBJECT_META]: OBJECT_META_SCHEMA, [LIST_META]: LIST_META_SCHEMA };
  for (const r of resources) {
    paths = { ...paths, ...pathsFor(r, V3) };
    schemas = { ...schemas, ...schemasFor(r, V3) };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion }, paths, components: { schemas } };
}

function hashOf(doc: JsonObject): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase();
}

export function openapiV3Root(registry: ResourceRegistry): JsonObject {
  const paths: JsonObject = {};
  for (const g of registry.groups()) {
    for (const v of g.versions) {
      const doc = openapiV3GroupVersion(registry, g.group, v);
      if (!doc) continue;
      const p = groupVersionPath(g.group, v);
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hashOf(doc)}` };
    }
  }
  return { paths };
}

export function openapiV2(registry: ResourceRegistry): JsonObject {
  let paths: JsonObject = {};
  let definitions: JsonObject = { [OBJECT_META]: OBJECT_META_SCHEMA, [LIST_META]: LIST_META_SCHEMA };
  for (const r of registry.all()) {
    paths = { ...paths, ...pathsFor(r, V2) };
    definitions = { ...definitions, ...schemasFor(r, V2) };
  }
  return { swagger: '2.0', info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion }, paths, definitions };
}
