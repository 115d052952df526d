// The semantics of the Kubernetes API over the store: create, get, list, update, patch, apply,
// with resourceVersion preconditions, generations, status subresources, validation and field
// ownership. Deletion is in deletion.ts, the scale and binding subresources in subresources.ts,
// ObjectMeta's rules in object-meta.ts. HTTP lives in http.ts; controllers call these directly.
import { randomUUID } from 'node:crypto';
import type { ChangeHook, ListOptions, PatchType, Selection, WriteOptions, WriteResult } from './api-options.ts';
import { ApiError, alreadyExists, badRequest, conflict, forbidden, invalid, notFound, STALE_OBJECT_MESSAGE, unsupportedMediaType } from './errors.ts';
import type { FieldError } from './errors.ts';
import {
  applyBuiltinDefaults,
  DEFAULT_SERVICE_CLUSTER_IP_RANGE,
  GENERATION_KINDS,
  keepsStatusOnCreate,
  prepareBuiltinCreate,
  serviceIpPrefix,
  validateBuiltin,
  validateName,
} from './builtins.ts';
import { decodeContinue, encodeContinue } from './continue-token.ts';
import { CRD_CLEANUP_FINALIZER, crdResources, crdStatus, defaultCrd, validateCrd } from './crd.ts';
import { eventFromCore, eventToCore } from './events.ts';
import { normaliseFieldRequirements, objectFields } from './fields.ts';
import { metaOf, obj, type JsonObject } from './json.ts';
import { recordUpdate, sameIgnoringTimestamps, serverSideApply } from './managedfields.ts';
import { podSecurityAdmission, type PodSecurityLookup } from './pod-security-admission.ts';
import type { WriteContext } from './managedfields.ts';
import { generatedSuffix, managerFor, nowTimestamp, SYSTEM_META, validateMetadata } from './object-meta.ts';
import { jsonMergePatch, jsonPatch, strategicMergePatch } from './patch.ts';
import { ResourceRegistry } from './registry.ts';
import { apiVersionOf } from './resources.ts';
import type { ResourceInfo } from './resources.ts';
import { applyDefaults, prune, validateValue } from './schema.ts';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { admitPodServiceAccount } from './serviceaccounts.ts';
import { Store } from './store.ts';
import { builtinTypeNode, schemaTypeNode } from './typeinfo.ts';
import type { TypeNode } from './typeinfo.ts';

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as JsonObject).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

export class Api {
  readonly store: Store;
  readonly registry: ResourceRegistry;
  /**
   * Called after each stored create, before the client's answer: what a real control plane adds
   * to a new namespace soon after (its `default` ServiceAccount, `kube-root-ca.crt`) is there at
   * once, so a client's next request never races the controllers.
   */
  readonly afterCreate: ChangeHook[] = [];

  /** the first two octets of the Service ClusterIP range, e.g. `127.96` */
  readonly serviceIpPrefix: string;

  constructor(store: Store, registry: ResourceRegistry, options: { serviceClusterIpRange?: string } = {}) {
    this.serviceIpPrefix = serviceIpPrefix(options.serviceClusterIpRange ?? DEFAULT_SERVICE_CLUSTER_IP_RANGE);
    this.store = store;
    this.registry = registry;
    for (const crd of store.list('customresourcedefinitions.apiextensions.k8s.io')) this.registerCrd(crd);
  }

  // ---------------------------------------------------------------------------------------
  // Conversion between the stored shape and the version a client asked for

  external(res: ResourceInfo, stored: JsonObject): JsonObject {
    if (res.group === 'events.k8s.io') return eventFromCore(structuredClone(stored));
    const out = structuredClone(stored);
    out.apiVersion = apiVersionOf(res);
    out.kind = res.kind;
    return { apiVersion: out.apiVersion, kind: out.kind, ...out };
  }

  private internal(res: ResourceInfo, external: JsonObject): JsonObject {
    if (res.group === 'events.k8s.io') return eventToCore(external);
    const storage = this.registry.storageInfo(res.storageKey) ?? res;
    const out = structuredClone(external);
    out.apiVersion = apiVersionOf(storage);
    out.kind = res.kind;
    return out;
  }

  typeNode(res: ResourceInfo): TypeNode {
    return res.crd ? schemaTypeNode(res.crd.compiled?.schema) : builtinTypeNode(res.kind);
  }

  // ---------------------------------------------------------------------------------------
  // Reads

  getStored(res: ResourceInfo, namespace: string, name: string): JsonObject {
    const stored = this.store.get(res.storageKey, res.namespaced ? namespace : '', name);
    if (!stored) throw notFound(res, name);
    return stored;
  }

  get(res: ResourceInfo, namespace: string, name: string): JsonObject {
    return this.external(res, this.getStored(res, namespace, name));
  }

  parseSelection(res: ResourceInfo, opts: { labelSelector?: string; fieldSelector?: string }): Selection {
    return {
      labels: opts.labelSelector ? parseLabelSelector(opts.labelSelector) : [],
      fields: opts.fieldSelector ? normaliseFieldRequirements(res, parseFieldSelector(opts.fieldSelector)) : [],
    };
  }

  matches(res: ResourceInfo, stored: JsonObject, sel: Selection): boolean {
    if (!matchesLabels(sel.labels, obj(obj(stored.metadata).labels) as Record<string, string>)) return false;
    return sel.fields.length === 0 || matchesFields(sel.fields, objectFields(res, stored));
  }

  list(res: ResourceInfo, namespace: string | undefined, opts: ListOptions): { items: JsonObject[]; metadata: JsonObject } {
    const sel = this.parseSelection(res, opts);
    const token = opts.continue ? decodeContinue(opts.continue) : undefined;
    const all = this.store
      .list(res.storageKey, res.namespaced ? namespace : undefined)
      .filter((o) => this.matches(res, o, sel));
    const keyOf = (o: JsonObject): string => `${String(obj(o.metadata).namespace ?? '')}/${String(obj(o.metadata).name)}`;
    const remaining = token ? all.filter((o) => keyOf(o) > token.after) : all;
    const rv = token?.rv ?? this.store.resourceVersion;
    const limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    const page = limit ? remaining.slice(0, limit) : remaining;
    const metadata: JsonObject = { resourceVersion: String(rv) };
    if (limit && remaining.length > limit) {
      const last = page[page.length - 1] as JsonObject;
      metadata.continue = encodeContinue({ rv, after: keyOf(last) });
      metadata.remainingItemCount = remaining.length - limit;
    }
    return { items: page.map((o) => this.external(res, o)), metadata };
  }

  // ---------------------------------------------------------------------------------------
  // Writes

  private writeContext(res: ResourceInfo, opts: WriteOptions, subresource: string | undefined): WriteContext {
    return {
      manager: managerFor(opts),
      apiVersion: apiVersionOf(res),
      now: nowTimestamp(),
      ...(subresource ? { subresource } : {}),
      type: this.typeNode(res),
      hasStatus: res.hasStatus,
    };
  }

  private checkNamespace(res: ResourceInfo, namespace: string): void {
    if (!res.namespaced) return;
    const ns = this.store.get('namespaces', '', namespace);
    if (!ns) throw notFound({ group: '', plural: 'namespaces' }, namespace);
    if (obj(ns.metadata).deletionTimestamp !== undefined) {
      throw forbidden(res, '', `unable to create new content in namespace ${namespace} because it is being terminated`);
    }
  }

  private readonly podSecurityLookup: PodSecurityLookup = {
    namespaceLabels: (namespace) => obj(obj(this.store.get('namespaces', '', namespace)?.metadata).labels),
    pods: (namespace) => this.store.list('pods', namespace),
  };

  private checkCrdActive(res: ResourceInfo): void {
    if (!res.crd) return;
    const crd = this.store.get('customresourcedefinitions.apiextensions.k8s.io', '', res.crd.crdName);
    if (crd && obj(crd.metadata).deletionTimestamp !== undefined) {
      throw new ApiError(405, 'MethodNotAllowed', `create not allowed while custom resource definition is terminating`);
    }
  }

  /**
   * Decoding steps the apiserver applies to every written object of a kind: defaults, pruning of
   * unknown fields (custom resources), validation. Returns warnings for dropped fields.
   */
  private admit(res: ResourceInfo, o: JsonObject, old: JsonObject | undefined, opts: WriteOptions, name: string): string[] {
    const warnings: string[] = [];
    const errors: FieldError[] = [];
    const meta = metaOf(o);
    if (!old) {
      const nameProblem = typeof meta.name === 'string' ? validateName(res.kind, meta.name) : undefined;
      if (nameProblem) errors.push({ type: 'FieldValueInvalid', field: 'metadata.name', value: meta.name, detail: nameProblem });
    }
    errors.push(...validateMetadata(meta));
    if (res.crd) {
      const compiled = res.crd.compiled;
      if (compiled) {
        const dropped = prune(o, compiled.schema, '', true);
        if (dropped.length > 0) {
          if (opts.fieldValidation === 'Strict') {
            throw badRequest(`${res.kind} in version "${res.version}" cannot be handled as a ${res.kind}: strict decoding error: ${dropped.map((d) => `unknown field "${d}"`).join(', ')}`);
          }
          if (opts.fieldValidation === 'Warn') warnings.push(...dropped.map((d) => `unknown field "${d}"`));
        }
        applyDefaults(o, compiled.schema);
        errors.push(...validateValue(compiled, o, old));
      }
    } else {
      applyBuiltinDefaults(res.kind, o);
      if (res.kind === 'CustomResourceDefinition') {
        defaultCrd(o);
        errors.push(...validateCrd(o));
      } else errors.push(...validateBuiltin(res.kind, o, old));
    }
    if (errors.length > 0) throw invalid(res.kind, res.group, name, errors);
    return warnings;
  }

  create(res: ResourceInfo, namespace: string, body: unknown, opts: WriteOptions, applied?: JsonObject): WriteResult {
    const o = structuredClone(applied ?? obj(body));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('Object cannot be handled as a ' + res.kind + ': body must be a JSON object');
    this.checkApiVersion(res, o);
    const meta = metaOf(o);
    if (res.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = namespace;
    } else delete meta.namespace;
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') throw badRequest('resourceVersion should not be set on objects to be created');
    delete meta.resourceVersion;
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName !== '') {
      meta.name = `${meta.generateName}${generatedSuffix()}`;
    }
    if (typeof meta.name !== 'string' || meta.name === '') {
      throw invalid(res.kind, res.group, '', [{ type: 'FieldValueRequired', field: 'metadata.name', detail: 'name or generateName is required' }]);
    }
    const name = meta.name;
    this.checkNamespace(res, namespace);
    this.checkCrdActive(res);
    for (const f of SYSTEM_META) delete meta[f];
    if (!applied) delete meta.managedFields;
    meta.uid = randomUUID();
    meta.creationTimestamp = nowTimestamp();
    if (GENERATION_KINDS.has(res.kind) || res.crd) meta.generation = 1;
    let internal = this.internal(res, o);
    if (res.hasStatus && !keepsStatusOnCreate(res.kind)) delete internal.status;
    const warnings = this.admit(res, internal, undefined, opts, name);
    if (!res.crd) prepareBuiltinCreate(res.kind, internal, { list: (key) => this.store.list(key), serviceIpPrefix: this.serviceIpPrefix });
    if (res.kind === 'CustomResourceDefinition') {
      metaOf(internal).finalizers = [...new Set([...((metaOf(internal).finalizers as string[] | undefined) ?? []), CRD_CLEANUP_FINALIZER])];
      internal.status = crdStatus(internal, nowTimestamp(), undefined);
    }
    if (!applied) recordUpdate(undefined, internal, this.writeContext(res, opts, undefined));
    // Mutating admission runs after field tracking, so what it adds belongs to no manager (as upstream).
    if (res.kind === 'Pod' && res.group === '') {
      const account = String(obj(internal.spec).serviceAccountName ?? 'default');
      admitPodServiceAccount(internal, this.store.get('serviceaccounts', namespace, account), generatedSuffix);
    }
    // Validating admission (PodSecurity) sees the mutated object and comes before storage's AlreadyExists.
    warnings.push(...podSecurityAdmission(res, namespace, internal, undefined, this.podSecurityLookup));
    if (this.store.get(res.storageKey, res.namespaced ? namespace : '', name)) throw alreadyExists(res, name);
    if (opts.dryRun) return { object: this.external(res, internal), status: 201, warnings };
    internal = this.store.create(res.storageKey, internal);
    if (res.kind === 'CustomResourceDefinition') this.registerCrd(internal);
    for (const hook of this.afterCreate) hook(res, internal, 'ADDED');
    return { object: this.external(res, internal), status: 201, warnings };
  }

  private checkApiVersion(res: ResourceInfo, o: JsonObject): void {
    const expected = apiVersionOf(res);
    if (o.apiVersion !== undefined && o.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${expected})`);
    }
    if (o.kind !== undefined && o.kind !== res.kind) {
      throw badRequest(`${res.kind} in version "${res.version}" cannot be handled as a ${res.kind}: the kind in the data (${String(o.kind)}) does not match the expected kind (${res.kind})`);
    }
    o.apiVersion = expected;
    o.kind = res.kind;
  }

  update(res: ResourceInfo, namespace: string, name: string, body: unknown, opts: WriteOptions, subresource?: string): WriteResult {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('body must be a JSON object');
    const o = structuredClone(body as JsonObject);
    const meta = metaOf(o);
    if (meta.name !== undefined && meta.name !== name) throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    const ns = res.namespaced ? namespace : '';
    const existing = this.store.get(res.storageKey, ns, name);
    if (!existing) {
      if (res.allowCreateOnUpdate && !subresource) return this.create(res, namespace, o, opts);
      throw notFound(res, name);
    }
    this.checkApiVersion(res, o);
    if (res.namespaced && meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    this.checkPreconditions(res, existing, meta);
    return this.commitUpdate(res, existing, this.internal(res, o), opts, subresource, undefined);
  }

  private checkPreconditions(res: ResourceInfo, existing: JsonObject, meta: JsonObject): void {
    const current = obj(existing.metadata);
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && meta.resourceVersion !== current.resourceVersion) {
      throw conflict(res, String(current.name), STALE_OBJECT_MESSAGE);
    }
    if (meta.uid !== undefined && meta.uid !== '' && meta.uid !== current.uid) {
      throw conflict(res, String(current.name), `Precondition failed: UID in precondition: ${String(meta.uid)}, UID in object meta: ${String(current.uid)}`);
    }
  }

  /**
   * Turns a candidate (the full object a client wants, stored shape) into the stored next
   * version of `old`: keeps system metadata, applies status-subresource rules, validates,
   * bumps generation, records field ownership, and completes deletion when the last
   * finalizer goes. A write that changes nothing is not stored (no new resourceVersion).
   */
  commitUpdate(res: ResourceInfo, old: JsonObject, candidate: JsonObject, opts: WriteOptions, subresource: string | undefined, appliedBy: WriteContext | undefined): WriteResult {
    const oldMeta = obj(old.metadata);
    let next: JsonObject;
    if (subresource === 'status') {
      next = structuredClone(old);
      if (candidate.status === undefined) delete next.status;
      else next.status = candidate.status;
      if (appliedBy) metaOf(next).managedFields = obj(candidate.metadata).managedFields;
    } else {
      next = candidate;
      if (res.hasStatus) {
        if (old.status === undefined) delete next.status;
        else next.status = structuredClone(old.status);
      }
    }
    const meta = metaOf(next);
    for (const f of SYSTEM_META) {
      if (oldMeta[f] === undefined) delete meta[f];
      else meta[f] = structuredClone(oldMeta[f]);
    }
    meta.name = oldMeta.name;
    if (res.namespaced) meta.namespace = oldMeta.namespace;
    else delete meta.namespace;
    meta.resourceVersion = oldMeta.resourceVersion;
    if (!appliedBy) delete meta.managedFields;
    if (!appliedBy && oldMeta.managedFields !== undefined) meta.managedFields = structuredClone(oldMeta.managedFields);
    const name = String(oldMeta.name);

    const warnings = this.admit(res, next, old, opts, name);
    if (oldMeta.deletionTimestamp !== undefined) {
      const before = new Set((oldMeta.finalizers as string[] | undefined) ?? []);
      const added = ((meta.finalizers as string[] | undefined) ?? []).filter((f) => !before.has(f));
      if (added.length > 0) {
        throw invalid(res.kind, res.group, name, [{ type: 'FieldValueForbidden', field: 'metadata.finalizers', detail: `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` }]);
      }
    }
    if (subresource === undefined) warnings.push(...podSecurityAdmission(res, String(meta.namespace ?? ''), next, old, this.podSecurityLookup));
    if (meta.generation !== undefined) {
      const specOf = (o: JsonObject): string => stable(Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata' && k !== 'status')));
      if (specOf(next) !== specOf(old)) meta.generation = Number(oldMeta.generation ?? 0) + 1;
    }
    if (res.kind === 'CustomResourceDefinition') next.status = crdStatus(next, nowTimestamp(), old);
    if (!appliedBy) recordUpdate(old, next, this.writeContext(res, opts, subresource));
    if (Array.isArray(meta.finalizers) && meta.finalizers.length === 0) delete meta.finalizers;
    if (Array.isArray(meta.managedFields) && meta.managedFields.length === 0) delete meta.managedFields;

    if (sameIgnoringTimestamps(next, old)) return { object: this.external(res, old), status: 200, warnings };
    const finishing = meta.deletionTimestamp !== undefined && ((meta.finalizers as string[] | undefined) ?? []).length === 0 && !(res.kind === 'Namespace' && ((obj(next.spec).finalizers as string[] | undefined) ?? []).length > 0);
    if (opts.dryRun) return { object: this.external(res, next), status: 200, warnings };
    if (finishing) {
      const removed = this.store.remove(res.storageKey, String(meta.namespace ?? ''), name) ?? next;
      this.afterRemove(res, removed);
      return { object: this.external(res, removed), status: 200, warnings };
    }
    const stored = this.store.update(res.storageKey, next);
    if (res.kind === 'CustomResourceDefinition') this.registerCrd(stored);
    return { object: this.external(res, stored), status: 200, warnings };
  }

  patch(res: ResourceInfo, namespace: string, name: string, type: PatchType, body: unknown, opts: WriteOptions, subresource: string | undefined, force: boolean): WriteResult {
    const ns = res.namespaced ? namespace : '';
    const existing = this.store.get(res.storageKey, ns, name);
    if (type === 'apply') return this.apply(res, namespace, name, body, opts, subresource, force, existing);
    if (!existing) throw notFound(res, name);
    const current = this.external(res, existing);
    let patched: unknown;
    switch (type) {
      case 'json':
        patched = jsonPatch(current, body);
        break;
      case 'merge':
        patched = jsonMergePatch(current, body);
        break;
      case 'strategic':
        if (res.crd) throw unsupportedMediaType('application/strategic-merge-patch+json');
        patched = strategicMergePatch(current, body, this.typeNode(res));
        break;
    }
    const o = obj(patched);
    const meta = metaOf(o);
    if (meta.name !== name) throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    this.checkApiVersion(res, o);
    const currentRV = String(obj(existing.metadata).resourceVersion);
    const patchRV = obj(obj(body).metadata).resourceVersion;
    if (typeof patchRV === 'string' && patchRV !== '' && patchRV !== currentRV) throw conflict(res, name, STALE_OBJECT_MESSAGE);
    meta.resourceVersion = currentRV;
    this.checkPreconditions(res, existing, meta);
    return this.commitUpdate(res, existing, this.internal(res, o), opts, subresource, undefined);
  }

  private apply(res: ResourceInfo, namespace: string, name: string, body: unknown, opts: WriteOptions, subresource: string | undefined, force: boolean, existing: JsonObject | undefined): WriteResult {
    if (!opts.fieldManager) {
      throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    }
    const config = obj(body);
    if (typeof body !== 'object' || body === null) throw badRequest('error decoding YAML: apply patch must be an object');
    if (config.apiVersion === undefined || config.apiVersion === '') throw badRequest("invalid object type: /, Kind=: apiVersion must be set");
    if (config.kind === undefined || config.kind === '') throw badRequest('invalid object type: kind must be set');
    this.checkApiVersion(res, config);
    const cmeta = metaOf(config);
    if (cmeta.name !== undefined && cmeta.name !== name) throw badRequest(`the name of the object (${String(cmeta.name)}) does not match the name on the URL (${name})`);
    if (res.namespaced && cmeta.namespace !== undefined && cmeta.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const ctx = this.writeContext(res, opts, subresource);
    if (!existing) {
      if (subresource) throw notFound(res, name);
      const created = serverSideApply(undefined, config, ctx, force);
      const meta = metaOf(created);
      meta.name = name;
      if (res.namespaced) meta.namespace = namespace;
      return this.create(res, namespace, created, opts, created);
    }
    const current = this.external(res, existing);
    if (cmeta.resourceVersion !== undefined && cmeta.resourceVersion !== obj(existing.metadata).resourceVersion) {
      throw conflict(res, name, STALE_OBJECT_MESSAGE);
    }
    const merged = serverSideApply(current, config, ctx, force);
    metaOf(merged).resourceVersion = obj(existing.metadata).resourceVersion;
    return this.commitUpdate(res, existing, this.internal(res, merged), opts, subresource, ctx);
  }

  /** What goes with a removed object: a CustomResourceDefinition's resources are no longer served. */
  afterRemove(res: ResourceInfo, removed: JsonObject): void {
    if (res.kind === 'CustomResourceDefinition') this.registry.removeCustom(String(obj(removed.metadata).name));
  }

  // ---------------------------------------------------------------------------------------
  // CustomResourceDefinitions

  registerCrd(crd: JsonObject): void {
    const name = String(obj(crd.metadata).name);
    this.registry.setCustom(name, crdResources(crd));
  }
}
