// Field ownership (metadata.managedFields, FieldsV1) and server-side apply, after
// structured-merge-diff: every write records which manager set which fields; an apply merges
// the manager's configuration, reports conflicts with other managers on fields whose values
// it would change, and removes fields the manager applied before but no longer applies.
import { ApiError } from './errors.ts';
import { KEY_DEFAULTS } from './typeinfo.ts';
import type { TypeNode } from './typeinfo.ts';
import { isObject, type Json, type JsonObject } from './json.ts';


function equal(a: Json, b: Json): boolean {
  return stableStringify(a) === stableStringify(b);
}

export function stableStringify(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** A path element as FieldsV1 spells it: `f:name`, `k:{"name":"c"}`, `v:"x"`, `i:0`. */
type PathElement = string;
type Path = PathElement[];

/** A set of paths; `.` marks the node itself as a member when it also has children. */
export class FieldSet {
  readonly paths = new Map<string, Path>();

  static of(paths: Iterable<Path>): FieldSet {
    const s = new FieldSet();
    for (const p of paths) s.add(p);
    return s;
  }

  add(p: Path): void {
    this.paths.set(JSON.stringify(p), p);
  }
  has(p: Path): boolean {
    return this.paths.has(JSON.stringify(p));
  }
  get size(): number {
    return this.paths.size;
  }
  minus(other: FieldSet): FieldSet {
    return FieldSet.of([...this.paths.values()].filter((p) => !other.has(p)));
  }
  intersect(other: FieldSet): FieldSet {
    return FieldSet.of([...this.paths.values()].filter((p) => other.has(p)));
  }
  union(other: FieldSet): FieldSet {
    return FieldSet.of([...this.paths.values(), ...other.paths.values()]);
  }
  /** true when a member is p itself or lies under p */
  hasPrefix(p: Path): boolean {
    for (const q of this.paths.values()) if (q.length >= p.length && p.every((e, i) => q[i] === e)) return true;
    return false;
  }

  toFieldsV1(): JsonObject {
    const root: JsonObject = {};
    for (const p of this.paths.values()) {
      let node = root;
      for (const e of p) {
        if (!isObject(node[e])) node[e] = {};
        node = node[e] as JsonObject;
      }
    }
    // a member that also has children is marked with "."
    for (const p of this.paths.values()) {
      let node = root;
      for (const e of p) node = node[e] as JsonObject;
      if (Object.keys(node).length > 0) node['.'] = {};
    }
    return root;
  }

  static fromFieldsV1(v: Json): FieldSet {
    const s = new FieldSet();
    const walk = (node: Json, prefix: Path): void => {
      if (!isObject(node)) return;
      const keys = Object.keys(node);
      if (keys.length === 0 && prefix.length > 0) s.add(prefix);
      for (const k of keys) {
        if (k === '.') s.add(prefix);
        else walk(node[k], [...prefix, k]);
      }
    };
    walk(v, []);
    return s;
  }
}

function keyOf(item: JsonObject, keys: string[]): JsonObject {
  const out: JsonObject = {};
  for (const k of [...keys].sort()) out[k] = item[k] ?? KEY_DEFAULTS[k];
  return out;
}

function itemElement(item: Json, keys: string[]): PathElement {
  return `k:${JSON.stringify(keyOf(item as JsonObject, keys))}`;
}

/** Fields that no manager owns: identity and server-maintained metadata. */
const IGNORED_TOP = new Set(['apiVersion', 'kind']);
const IGNORED_META = new Set(['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'resourceVersion', 'generation', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds']);

export type Scope = 'main' | 'status';

/** The set of fields an object (or an apply configuration) specifies. */
export function fieldsOf(obj: Json, type: TypeNode, scope: Scope | 'all' = 'all'): FieldSet {
  const out = new FieldSet();
  if (!isObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (IGNORED_TOP.has(k)) continue;
    if (scope === 'main' && k === 'status') continue;
    if (scope === 'status' && k !== 'status') continue;
    if (k === 'metadata' && isObject(v)) {
      const meta = Object.fromEntries(Object.entries(v).filter(([mk]) => !IGNORED_META.has(mk)));
      if (Object.keys(meta).length > 0) walkValue(meta, type.field('metadata'), ['f:metadata'], out);
      continue;
    }
    walkValue(v, type.field(k), [`f:${k}`], out);
  }
  return out;
}

function walkValue(v: Json, type: TypeNode, path: Path, out: FieldSet): void {
  if (isObject(v) && !type.atomicMap()) {
    const entries = Object.entries(v);
    if (entries.length === 0) {
      out.add(path);
      return;
    }
    for (const [k, child] of entries) walkValue(child, type.field(k), [...path, `f:${k}`], out);
    return;
  }
  if (Array.isArray(v)) {
    const lt = type.listType();
    if (lt.kind === 'atomic' || v.length === 0) {
      out.add(path);
      return;
    }
    if (lt.kind === 'set') {
      for (const item of v) out.add([...path, `v:${JSON.stringify(item)}`]);
      return;
    }
    for (const item of v) {
      if (!isObject(item)) continue;
      const itemPath = [...path, itemElement(item, lt.keys)];
      out.add(itemPath);
      for (const [k, child] of Object.entries(item)) walkValue(child, type.elem().field(k), [...itemPath, `f:${k}`], out);
    }
    return;
  }
  out.add(path);
}

function step(v: Json, e: PathElement): Json {
  if (e.startsWith('f:')) return isObject(v) ? v[e.slice(2)] : undefined;
  if (!Array.isArray(v)) return undefined;
  if (e.startsWith('k:')) {
    const key = JSON.parse(e.slice(2)) as JsonObject;
    return v.find((item) => isObject(item) && Object.entries(key).every(([k, kv]) => equal(item[k] ?? KEY_DEFAULTS[k], kv)));
  }
  if (e.startsWith('v:')) {
    const want = JSON.parse(e.slice(2)) as Json;
    return v.find((item) => equal(item, want));
  }
  if (e.startsWith('i:')) return v[Number(e.slice(2))];
  return undefined;
}

export function valueAt(obj: Json, path: Path): Json {
  let cur = obj;
  for (const e of path) {
    cur = step(cur, e);
    if (cur === undefined) return undefined;
  }
  return cur;
}

function removeAt(obj: Json, path: Path): void {
  const parent = valueAt(obj, path.slice(0, -1));
  const last = path[path.length - 1] ?? '';
  if (last.startsWith('f:')) {
    if (isObject(parent)) delete parent[last.slice(2)];
    return;
  }
  if (!Array.isArray(parent)) return;
  const target = step(parent, last);
  const idx = parent.indexOf(target);
  if (idx >= 0) parent.splice(idx, 1);
}

export function pathString(path: Path): string {
  return path
    .map((e) => {
      if (e.startsWith('f:')) return `.${e.slice(2)}`;
      if (e.startsWith('k:')) {
        const key = JSON.parse(e.slice(2)) as JsonObject;
        return `[${Object.entries(key).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
      }
      if (e.startsWith('v:')) return `[=${e.slice(2)}]`;
      return `[${e.slice(2)}]`;
    })
    .join('');
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: JsonObject;
  subresource?: string;
}

function entries(obj: JsonObject): ManagedFieldsEntry[] {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  return Array.isArray(meta.managedFields) ? (structuredClone(meta.managedFields) as ManagedFieldsEntry[]) : [];
}

function sameOwner(e: ManagedFieldsEntry, manager: string, operation: string, subresource: string | undefined): boolean {
  return e.manager === manager && e.operation === operation && (e.subresource ?? '') === (subresource ?? '');
}

function setEntries(obj: JsonObject, list: ManagedFieldsEntry[]): void {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  obj.metadata = meta;
  const kept = list.filter((e) => Object.keys(e.fieldsV1).length > 0);
  if (kept.length > 0) meta.managedFields = kept;
  else delete meta.managedFields;
}

export interface WriteContext {
  manager: string;
  apiVersion: string;
  now: string;
  /** 'status' for writes through the status subresource */
  subresource?: string;
  type: TypeNode;
  /** resources with a status subresource track main-resource and status fields separately */
  hasStatus: boolean;
}

function scopeOf(ctx: WriteContext): Scope | 'all' {
  if (!ctx.hasStatus) return 'all';
  return ctx.subresource === 'status' ? 'status' : 'main';
}

/**
 * Records an ordinary write (create, update, non-apply patch): the manager now owns the fields
 * it changed, others lose them, and fields that disappeared are owned by nobody.
 */
export function recordUpdate(oldObj: JsonObject | undefined, newObj: JsonObject, ctx: WriteContext): void {
  const scope = scopeOf(ctx);
  const before = oldObj ? fieldsOf(oldObj, ctx.type, scope) : new FieldSet();
  const after = fieldsOf(newObj, ctx.type, scope);
  const changed = FieldSet.of([...after.paths.values()].filter((p) => !before.has(p) || !equal(valueAt(oldObj, p), valueAt(newObj, p))));
  const removed = before.minus(after);
  let list = oldObj ? entries(oldObj) : entries(newObj);
  list = list.map((e) => ({ ...e, fieldsV1: FieldSet.fromFieldsV1(e.fieldsV1).minus(changed).minus(removed).toFieldsV1() }));
  if (changed.size > 0) {
    const existing = list.find((e) => sameOwner(e, ctx.manager, 'Update', ctx.subresource) && e.apiVersion === ctx.apiVersion);
    if (existing) {
      existing.fieldsV1 = FieldSet.fromFieldsV1(existing.fieldsV1).union(changed).toFieldsV1();
      existing.time = ctx.now;
    } else {
      list.push({ manager: ctx.manager, operation: 'Update', apiVersion: ctx.apiVersion, time: ctx.now, fieldsType: 'FieldsV1', fieldsV1: changed.toFieldsV1(), ...(ctx.subresource ? { subresource: ctx.subresource } : {}) });
    }
  }
  setEntries(newObj, list);
}

export interface Conflict {
  manager: string;
  operation: string;
  apiVersion: string;
  path: string;
}

export function conflictError(conflicts: Conflict[]): ApiError {
  const describe = (c: Conflict): string => (c.operation === 'Update' ? `"${c.manager}" using ${c.apiVersion}` : `"${c.manager}"`);
  let message: string;
  if (conflicts.length === 1) {
    const c = conflicts[0] as Conflict;
    message = `Apply failed with 1 conflict: conflict with ${describe(c)}: ${c.path}`;
  } else {
    const byManager = new Map<string, Conflict[]>();
    for (const c of conflicts) byManager.set(describe(c), [...(byManager.get(describe(c)) ?? []), c]);
    message = `Apply failed with ${conflicts.length} conflicts: ${[...byManager.entries()].map(([m, cs]) => `conflicts with ${m}:\n${cs.map((c) => `- ${c.path}`).join('\n')}`).join('\n')}`;
  }
  return new ApiError(409, 'Conflict', message, {
    causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${describe(c)}`, field: c.path })),
  });
}

function mergeValue(live: Json, config: Json, type: TypeNode): Json {
  if (isObject(config) && isObject(live) && !type.atomicMap()) {
    const out = structuredClone(live);
    for (const [k, v] of Object.entries(config)) out[k] = mergeValue(live[k], v, type.field(k));
    return out;
  }
  if (Array.isArray(config) && Array.isArray(live)) {
    const lt = type.listType();
    if (lt.kind === 'set') {
      const out = structuredClone(live);
      for (const item of config) if (!out.some((x) => equal(x, item))) out.push(structuredClone(item));
      return out;
    }
    if (lt.kind === 'map') {
      const out = structuredClone(live);
      const el = type.elem();
      for (const item of config) {
        if (!isObject(item)) continue;
        const key = itemElement(item, lt.keys);
        const idx = out.findIndex((x) => isObject(x) && itemElement(x, lt.keys) === key);
        if (idx >= 0) out[idx] = mergeValue(out[idx], item, el);
        else out.push(structuredClone(item));
      }
      return out;
    }
  }
  return structuredClone(config);
}

/**
 * Server-side apply of `config` by ctx.manager onto `live` (undefined when creating).
 * Returns the merged object with updated managedFields, or throws a 409 listing conflicts.
 */
export function serverSideApply(live: JsonObject | undefined, config: JsonObject, ctx: WriteContext, force: boolean): JsonObject {
  const scope = scopeOf(ctx);
  const base = live ? structuredClone(live) : { apiVersion: config.apiVersion, kind: config.kind, metadata: {} };
  const configSet = fieldsOf(config, ctx.type, scope);
  let list = entries(base);
  const mine = list.find((e) => sameOwner(e, ctx.manager, 'Apply', ctx.subresource));
  const previous = mine ? FieldSet.fromFieldsV1(mine.fieldsV1) : new FieldSet();

  const differing = FieldSet.of([...configSet.paths.values()].filter((p) => {
    const lv = valueAt(base, p);
    const cv = valueAt(config, p);
    if (lv === undefined) return false;
    if ((isObject(lv) || Array.isArray(lv)) && (p[p.length - 1] ?? '').startsWith('k:')) return false;
    return !equal(lv, cv);
  }));
  const conflicts: Conflict[] = [];
  for (const e of list) {
    if (e.manager === ctx.manager && (e.subresource ?? '') === (ctx.subresource ?? '')) continue;
    if ((e.subresource ?? '') !== (ctx.subresource ?? '') && ctx.hasStatus) continue;
    const overlap = FieldSet.fromFieldsV1(e.fieldsV1).intersect(differing);
    for (const p of overlap.paths.values()) conflicts.push({ manager: e.manager, operation: e.operation, apiVersion: e.apiVersion, path: pathString(p) });
  }
  if (conflicts.length > 0 && !force) throw conflictError(conflicts);

  const merged = mergeValue(base, config, ctx.type) as JsonObject;
  // Fields this manager applied before and no longer applies go away unless someone else owns them.
  const others = list.filter((e) => !sameOwner(e, ctx.manager, 'Apply', ctx.subresource)).map((e) => FieldSet.fromFieldsV1(e.fieldsV1));
  // Parents first: a dropped list item goes whole, before its key fields could be removed.
  const dropped = [...previous.minus(configSet).paths.values()].sort((a, b) => a.length - b.length);
  const removed: Path[] = [];
  for (const p of dropped) {
    if (removed.some((r) => r.every((e, i) => p[i] === e))) continue;
    if (others.some((o) => o.hasPrefix(p))) continue;
    if (configSet.hasPrefix(p)) continue;
    removeAt(merged, p);
    removed.push(p);
  }
  pruneEmptyParents(merged, removed);

  const taken = force ? differing.union(configSet.intersect(differing)) : new FieldSet();
  list = list.map((e) => (sameOwner(e, ctx.manager, 'Apply', ctx.subresource) ? e : { ...e, fieldsV1: FieldSet.fromFieldsV1(e.fieldsV1).minus(taken).toFieldsV1() }));
  const entry: ManagedFieldsEntry = { manager: ctx.manager, operation: 'Apply', apiVersion: ctx.apiVersion, time: ctx.now, fieldsType: 'FieldsV1', fieldsV1: configSet.toFieldsV1(), ...(ctx.subresource ? { subresource: ctx.subresource } : {}) };
  const idx = list.findIndex((e) => sameOwner(e, ctx.manager, 'Apply', ctx.subresource));
  if (idx >= 0) {
    const old = list[idx] as ManagedFieldsEntry;
    if (equal(old.fieldsV1, entry.fieldsV1) && old.apiVersion === entry.apiVersion) entry.time = old.time;
    list[idx] = entry;
  } else list.push(entry);
  setEntries(merged, list);
  return merged;
}

/** After removing applied fields, maps they leave empty (e.g. `labels: {}`) go too. */
function pruneEmptyParents(obj: JsonObject, removed: Path[]): void {
  for (const p of removed) {
    for (let n = p.length - 1; n > 0; n--) {
      const parentPath = p.slice(0, n);
      const v = valueAt(obj, parentPath);
      const empty = (isObject(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.length === 0);
      if (empty && (parentPath[parentPath.length - 1] ?? '').startsWith('f:')) removeAt(obj, parentPath);
      else break;
    }
  }
}

/** Equality that ignores managedFields timestamps, which change on every write. */
export function sameIgnoringTimestamps(a: JsonObject, b: JsonObject): boolean {
  const strip = (o: JsonObject): JsonObject => {
    const c = structuredClone(o);
    const meta = isObject(c.metadata) ? c.metadata : {};
    if (Array.isArray(meta.managedFields)) meta.managedFields = (meta.managedFields as JsonObject[]).map((e) => ({ ...e, time: '' }));
    return c;
  };
  return equal(strip(a), strip(b));
}
