// CustomResourceDefinitions: their defaulting and validation on write, the status the
// apiextensions controllers would set, and the resources they make the server serve.
import { compileSchema } from './schema.ts';
import type { Schema } from './schema.ts';
import { obj, type JsonObject } from './json.ts';
import type { FieldError } from './errors.ts';
import { compareVersions, storageKeyOf, STANDARD_VERBS } from './resources.ts';
import type { ResourceInfo, ScaleSubresource } from './resources.ts';

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export const CRD_CLEANUP_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';

/** Fills in what the apiextensions-apiserver defaults on CRDs (names, conversion strategy). */
export function defaultCrd(crd: JsonObject): void {
  const spec = obj(crd.spec);
  crd.spec = spec;
  const names = obj(spec.names);
  spec.names = names;
  if (str(names.kind) && !str(names.singular)) names.singular = (names.kind as string).toLowerCase();
  if (str(names.kind) && !str(names.listKind)) names.listKind = `${names.kind as string}List`;
  if (spec.conversion === undefined) spec.conversion = { strategy: 'None' };
  if (!Array.isArray(spec.versions)) return;
  for (const v of spec.versions) {
    const version = obj(v);
    const schema = obj(obj(version.schema).openAPIV3Schema);
    if (Object.keys(schema).length > 0) defaultSchemaTree(schema as Schema);
  }
}

/** Like the apiserver, treat a scale/status-less but present `subresources` as given and add nothing. */
function defaultSchemaTree(s: Schema): void {
  for (const p of Object.values(s.properties ?? {})) defaultSchemaTree(p);
  if (s.items) defaultSchemaTree(s.items);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Validation of the CRD object itself; problems are reported like the apiserver (422). */
export function validateCrd(crd: JsonObject): FieldError[] {
  const errors: FieldError[] = [];
  const spec = obj(crd.spec);
  const names = obj(spec.names);
  const group = str(spec.group) ?? '';
  const plural = str(names.plural) ?? '';
  const name = str(obj(crd.metadata).name) ?? '';
  if (!group) errors.push({ type: 'FieldValueRequired', field: 'spec.group', detail: '' });
  else if (!group.includes('.')) errors.push({ type: 'FieldValueInvalid', field: 'spec.group', value: group, detail: 'should be a domain with at least one dot' });
  if (!plural) errors.push({ type: 'FieldValueRequired', field: 'spec.names.plural', detail: '' });
  else if (!DNS_LABEL.test(plural)) errors.push({ type: 'FieldValueInvalid', field: 'spec.names.plural', value: plural, detail: 'a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\'' });
  if (!str(names.kind)) errors.push({ type: 'FieldValueRequired', field: 'spec.names.kind', detail: '' });
  if (plural && group && name !== `${plural}.${group}`) {
    errors.push({ type: 'FieldValueInvalid', field: 'metadata.name', value: name, detail: 'must be spec.names.plural+"."+spec.group' });
  }
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    errors.push({ type: 'FieldValueNotSupported', field: 'spec.scope', value: spec.scope ?? '', detail: 'supported values: "Cluster", "Namespaced"' });
  }
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  if (versions.length === 0) errors.push({ type: 'FieldValueInvalid', field: 'spec.versions', value: [], detail: 'must have exactly one version marked as storage version' });
  else if (versions.filter((v) => v.storage === true).length !== 1) {
    errors.push({ type: 'FieldValueInvalid', field: 'spec.versions', value: versions.map((v) => v.name), detail: 'must have exactly one version marked as storage version' });
  }
  versions.forEach((v, i) => {
    const base = `spec.versions[${i}]`;
    if (!str(v.name)) errors.push({ type: 'FieldValueRequired', field: `${base}.name`, detail: '' });
    const schema = obj(v.schema).openAPIV3Schema;
    if (schema === undefined) {
      errors.push({ type: 'FieldValueRequired', field: `${base}.schema.openAPIV3Schema`, detail: 'schemas are required' });
      return;
    }
    const { problems } = compileSchema(obj(schema) as Schema);
    for (const p of problems) errors.push({ type: p.type, field: `${base}.schema.${p.path}`, value: p.value, detail: p.detail });
    const scale = obj(obj(v.subresources).scale);
    if (v.subresources !== undefined && obj(v.subresources).scale !== undefined) {
      if (!str(scale.specReplicasPath)) errors.push({ type: 'FieldValueRequired', field: `${base}.subresources.scale.specReplicasPath`, detail: '' });
      if (!str(scale.statusReplicasPath)) errors.push({ type: 'FieldValueRequired', field: `${base}.subresources.scale.statusReplicasPath`, detail: '' });
    }
  });
  return errors;
}

/** The status the apiextensions controllers set once names are accepted and the CRD is served. */
export function crdStatus(crd: JsonObject, now: string, previous: JsonObject | undefined): JsonObject {
  const spec = obj(crd.spec);
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  const storage = versions.find((v) => v.storage === true);
  const stored = new Set<string>(Array.isArray(obj(previous?.status).storedVersions) ? (obj(previous?.status).storedVersions as string[]) : []);
  if (storage && str(storage.name)) stored.add(storage.name as string);
  const names = obj(spec.names);
  const terminating = obj(crd.metadata).deletionTimestamp !== undefined;
  const condition = (type: string, status: string, reason: string, message: string): JsonObject => {
    const old = (Array.isArray(obj(previous?.status).conditions) ? (obj(previous?.status).conditions as JsonObject[]) : []).find((c) => c.type === type);
    return { type, status, lastTransitionTime: old && old.status === status ? old.lastTransitionTime : now, reason, message };
  };
  const conditions = [
    condition('NamesAccepted', 'True', 'NoConflicts', 'no conflicts found'),
    condition('Established', 'True', 'InitialNamesAccepted', 'the initial names have been accepted'),
  ];
  if (terminating) conditions.push(condition('Terminating', 'True', 'InstanceDeletionInProgress', 'CustomResource deletion is in progress'));
  return {
    acceptedNames: {
      plural: names.plural,
      singular: names.singular,
      kind: names.kind,
      listKind: names.listKind,
      ...(Array.isArray(names.shortNames) ? { shortNames: names.shortNames } : {}),
      ...(Array.isArray(names.categories) ? { categories: names.categories } : {}),
    },
    conditions,
    storedVersions: [...stored],
  };
}

/** The resources a (valid) CRD makes the server serve, one per served version, newest first. */
export function crdResources(crd: JsonObject): ResourceInfo[] {
  const spec = obj(crd.spec);
  const names = obj(spec.names);
  const group = str(spec.group) ?? '';
  const plural = str(names.plural) ?? '';
  const kind = str(names.kind) ?? '';
  const crdName = str(obj(crd.metadata).name) ?? '';
  const versions = (Array.isArray(spec.versions) ? spec.versions.map(obj) : []).filter((v) => v.served === true);
  versions.sort((a, b) => compareVersions(str(a.name) ?? '', str(b.name) ?? ''));
  return versions.map((v) => {
    const subresources = obj(v.subresources);
    const scaleSpec = subresources.scale !== undefined ? obj(subresources.scale) : undefined;
    const scale: ScaleSubresource | undefined = scaleSpec
      ? {
          specReplicasPath: str(scaleSpec.specReplicasPath) ?? '.spec.replicas',
          statusReplicasPath: str(scaleSpec.statusReplicasPath) ?? '.status.replicas',
          ...(str(scaleSpec.labelSelectorPath) ? { labelSelectorPath: scaleSpec.labelSelectorPath as string } : {}),
        }
      : undefined;
    const schema = obj(v.schema).openAPIV3Schema;
    const compiled = schema !== undefined ? compileSchema(obj(schema) as Schema).compiled : undefined;
    const printerColumns = (Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.map(obj) : []).map((c) => ({
      name: str(c.name) ?? '',
      type: str(c.type) ?? 'string',
      ...(str(c.format) ? { format: c.format as string } : {}),
      ...(str(c.description) ? { description: c.description as string } : {}),
      priority: typeof c.priority === 'number' ? c.priority : 0,
      jsonPath: str(c.jsonPath) ?? '',
    }));
    const selectableFields = (Array.isArray(v.selectableFields) ? v.selectableFields.map(obj) : []).map((f) => str(f.jsonPath) ?? '').filter(Boolean);
    return {
      group,
      version: str(v.name) ?? '',
      kind,
      listKind: str(names.listKind) ?? `${kind}List`,
      plural,
      singular: str(names.singular) ?? kind.toLowerCase(),
      namespaced: spec.scope !== 'Cluster',
      shortNames: Array.isArray(names.shortNames) ? (names.shortNames as string[]) : [],
      categories: Array.isArray(names.categories) ? (names.categories as string[]) : [],
      verbs: STANDARD_VERBS,
      storageKey: storageKeyOf(group, plural),
      hasStatus: subresources.status !== undefined,
      ...(scale ? { scale } : {}),
      specialSubresources: [],
      returnDeletedObject: true,
      allowCreateOnUpdate: false,
      crd: { crdName, ...(compiled ? { compiled } : {}), printerColumns, selectableFields },
      storageVersion: v.storage === true,
    };
  });
}
