// The three patch formats a client can send besides apply: JSON merge patch (RFC 7386),
// JSON patch (RFC 6902) and Kubernetes' strategic merge patch for built-in kinds.
import { ApiError } from './errors.ts';
import type { TypeNode } from './typeinfo.ts';
import { isObject, type Json, type JsonObject } from './json.ts';


function patchError(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

export function jsonMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = jsonMergePatch(out[k], v);
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw patchError(`invalid JSON pointer: ${JSON.stringify(pointer)}`);
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], op: string): { parent: Json; key: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw patchError(`${op} operation does not apply: doc is missing path: "/${tokens.join('/')}": missing value`);
  }
  return { parent: cur, key: tokens[tokens.length - 1] ?? '' };
}

function getAt(doc: Json, pointer: string): Json {
  let cur = doc;
  for (const t of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else return undefined;
  }
  return cur;
}

function removeAt(doc: Json, pointer: string, op: string): Json {
  const tokens = parsePointer(pointer);
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw patchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
    return parent.splice(i, 1)[0];
  }
  if (!isObject(parent) || !(key in parent)) throw patchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
  const old = parent[key];
  delete parent[key];
  return old;
}

function addAt(doc: Json, pointer: string, value: Json, replace: boolean, op: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = key === '-' ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i >= parent.length)) throw patchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
    parent.splice(i, replace ? 1 : 0, value);
  } else if (isObject(parent)) {
    if (replace && !(key in parent)) throw patchError(`${op} operation does not apply: doc is missing key: ${pointer}: missing value`);
    parent[key] = value;
  } else throw patchError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
  return doc;
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc = structuredClone(target);
  for (const raw of ops as JsonPatchOp[]) {
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, structuredClone(raw.value), false, 'add');
        break;
      case 'replace':
        doc = addAt(doc, raw.path, structuredClone(raw.value), true, 'replace');
        break;
      case 'remove':
        removeAt(doc, raw.path, 'remove');
        break;
      case 'move': {
        const v = removeAt(doc, raw.from ?? '', 'move');
        doc = addAt(doc, raw.path, v, false, 'move');
        break;
      }
      case 'copy':
        doc = addAt(doc, raw.path, structuredClone(getAt(doc, raw.from ?? '')), false, 'copy');
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, raw.path)) !== JSON.stringify(raw.value)) throw patchError(`testing value ${raw.path} failed: test failed`);
        break;
      default:
        throw patchError(`Unexpected kind: ${String(raw.op)}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch

const SET_ORDER = '$setElementOrder/';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';

export function strategicMergePatch(original: Json, patch: Json, type: TypeNode): Json {
  if (!isObject(patch)) throw new ApiError(400, 'BadRequest', 'strategic merge patch must be a JSON object');
  return mergeMap(isObject(original) ? structuredClone(original) : {}, patch, type);
}

function mergeMap(original: JsonObject, patch: JsonObject, type: TypeNode): JsonObject {
  const directive = patch.$patch;
  if (directive === 'replace') {
    const out = structuredClone(patch);
    delete out.$patch;
    return out;
  }
  if (directive === 'delete') return {};
  let out = original;
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    const keep = new Set(retain.map(String));
    out = Object.fromEntries(Object.entries(out).filter(([k]) => keep.has(k)));
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith(SET_ORDER)) continue;
    if (key.startsWith(DELETE_PRIMITIVE)) {
      const field = key.slice(DELETE_PRIMITIVE.length);
      const current = out[field];
      if (Array.isArray(current) && Array.isArray(value)) {
        const drop = new Set(value.map((v) => JSON.stringify(v)));
        out[field] = current.filter((v) => !drop.has(JSON.stringify(v)));
      }
      continue;
    }
    if (value === null) {
      delete out[key];
      continue;
    }
    const fieldType = type.field(key);
    const current = out[key];
    if (Array.isArray(value)) {
      out[key] = mergeList(Array.isArray(current) ? current : [], value, fieldType);
      const order = patch[`${SET_ORDER}${key}`];
      if (Array.isArray(order)) out[key] = applyOrder(out[key] as Json[], order, fieldType.mergeKey());
      continue;
    }
    if (isObject(value) && isObject(current) && !fieldType.atomicMap()) {
      const merged = mergeMap(structuredClone(current), value, fieldType);
      if (value.$patch === 'delete') delete out[key];
      else out[key] = merged;
      continue;
    }
    if (isObject(value)) {
      if (value.$patch === 'delete') {
        delete out[key];
        continue;
      }
      out[key] = stripDirectives(value);
      continue;
    }
    out[key] = structuredClone(value);
  }
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith(SET_ORDER) || !Array.isArray(order)) continue;
    const field = key.slice(SET_ORDER.length);
    if (field in patch) continue;
    const current = out[field];
    if (Array.isArray(current)) out[field] = applyOrder(current, order, type.field(field).mergeKey());
  }
  return out;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.filter((x) => !(isObject(x) && x.$patch !== undefined && Object.keys(x).length === 1)).map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    out[k] = stripDirectives(x);
  }
  return out;
}

function mergeList(original: Json[], patch: Json[], type: TypeNode): Json[] {
  const key = type.mergeKey();
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace')).map(stripDirectives);
  }
  if (key && patch.every((p) => isObject(p))) {
    const out = original.map((o) => structuredClone(o));
    for (const item of patch as JsonObject[]) {
      const idx = out.findIndex((o) => isObject(o) && JSON.stringify(o[key]) === JSON.stringify(item[key]));
      if (item.$patch === 'delete') {
        if (idx >= 0) out.splice(idx, 1);
        continue;
      }
      if (idx >= 0) out[idx] = mergeMap(out[idx] as JsonObject, item, type.elem());
      else out.push(stripDirectives(item));
    }
    return out;
  }
  if (type.mergesScalars()) {
    const seen = new Set(original.map((o) => JSON.stringify(o)));
    return [...original, ...patch.filter((p) => !seen.has(JSON.stringify(p)))];
  }
  return patch.map(stripDirectives);
}

function applyOrder(list: Json[], order: Json[], key: string | undefined): Json[] {
  const id = (v: Json): string => JSON.stringify(key && isObject(v) ? v[key] : v);
  const orderIds = order.map((o) => id(o));
  const ranked = list.filter((v) => orderIds.includes(id(v)));
  ranked.sort((a, b) => orderIds.indexOf(id(a)) - orderIds.indexOf(id(b)));
  return [...ranked, ...list.filter((v) => !orderIds.includes(id(v)))];
}
