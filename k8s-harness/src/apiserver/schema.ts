// Structural schemas of CustomResourceDefinitions: defaulting, pruning and validation as the
// apiextensions-apiserver does them, in that order, with its error wording.
import { compileCel, evaluateCel, CelCompileError, CelEvalError } from './cel.ts';
import type { CompiledRule } from './cel.ts';
import type { FieldError } from './errors.ts';
import { isObject, type Json, type JsonObject } from './json.ts';

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

export interface Schema {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  uniqueItems?: boolean;
  nullable?: boolean;
  default?: unknown;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: ValidationRule[];
}


const OBJECT_META_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

// ---------------------------------------------------------------------------------------------
// Defaulting

/** Applies `default`s in place, top-down, as the apiserver does on decode. */
export function applyDefaults(value: Json, schema: Schema): Json {
  if (isObject(value)) {
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      const current = value[name];
      if ((current === undefined || (current === null && !prop.nullable)) && prop.default !== undefined) {
        value[name] = structuredClone(prop.default);
      }
      if (value[name] !== undefined) value[name] = applyDefaults(value[name], prop);
    }
    if (isObject(schema.additionalProperties)) {
      const inner = schema.additionalProperties;
      for (const key of Object.keys(value)) {
        if (schema.properties && key in schema.properties) continue;
        value[key] = applyDefaults(value[key], inner);
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    const items = schema.items;
    for (let i = 0; i < value.length; i++) {
      if (value[i] === null && items.default !== undefined && !items.nullable) value[i] = structuredClone(items.default);
      value[i] = applyDefaults(value[i], items);
    }
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Pruning

/**
 * Drops fields the schema does not declare, in place, and returns their paths (the apiserver
 * reports them as `unknown field "spec.foo"` warnings, or rejects them with fieldValidation=Strict).
 */
export function prune(value: Json, schema: Schema, path: string, isRoot: boolean): string[] {
  const dropped: string[] = [];
  pruneInto(value, schema, path, isRoot, dropped);
  return dropped;
}

function join(path: string, field: string): string {
  return path ? `${path}.${field}` : field;
}

function pruneInto(value: Json, schema: Schema, path: string, isRoot: boolean, dropped: string[]): void {
  if (isObject(value)) {
    const embedded = isRoot || schema['x-kubernetes-embedded-resource'] === true;
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    for (const key of Object.keys(value)) {
      const prop = schema.properties?.[key];
      if (embedded && (key === 'apiVersion' || key === 'kind')) continue;
      if (embedded && key === 'metadata') {
        const meta = value[key];
        if (isObject(meta)) {
          for (const mk of Object.keys(meta)) {
            if (!OBJECT_META_FIELDS.has(mk)) {
              delete meta[mk];
              dropped.push(`${join(path, 'metadata')}.${mk}`);
            }
          }
        }
        continue;
      }
      if (prop) {
        pruneInto(value[key], prop, join(path, key), false, dropped);
        continue;
      }
      if (isObject(schema.additionalProperties)) {
        pruneInto(value[key], schema.additionalProperties, join(path, key), false, dropped);
        continue;
      }
      if (schema.additionalProperties === true || preserve) continue;
      delete value[key];
      dropped.push(join(path, key));
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => pruneInto(item, schema.items as Schema, `${path}[${i}]`, false, dropped));
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

export interface CompiledSchema {
  schema: Schema;
  /** compiled x-kubernetes-validations, keyed by the schema node they belong to */
  rules: Map<Schema, CompiledRule[]>;
  messageExpressions: Map<ValidationRule, CompiledRule>;
}

export interface SchemaProblem {
  /** path inside openAPIV3Schema, e.g. `properties[spec].x-kubernetes-validations[0].rule` */
  path: string;
  value: unknown;
  detail: string;
  type: FieldError['type'];
}

/**
 * Checks a CRD's schema the way the apiextensions-apiserver does at CRD creation (the parts
 * this server enforces: structural types and compilable CEL rules) and compiles its rules.
 */
export function compileSchema(schema: Schema): { compiled: CompiledSchema; problems: SchemaProblem[] } {
  const rules = new Map<Schema, CompiledRule[]>();
  const messageExpressions = new Map<ValidationRule, CompiledRule>();
  const problems: SchemaProblem[] = [];
  const walk = (s: Schema, path: string, isRoot: boolean): void => {
    const preserve = s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true;
    if (!s.type && !preserve && !isRoot && !s['x-kubernetes-embedded-resource']) {
      problems.push({ path: `${path}.type`, value: '', detail: 'must not be empty for specified object fields', type: 'FieldValueRequired' });
    }
    if (isRoot && s.type !== 'object') {
      problems.push({ path: `${path}.type`, value: s.type ?? '', detail: 'must be object at the root', type: 'FieldValueInvalid' });
    }
    if (s.pattern !== undefined) {
      try {
        new RegExp(s.pattern, 'u');
      } catch (err) {
        problems.push({ path: `${path}.pattern`, value: s.pattern, detail: (err as Error).message, type: 'FieldValueInvalid' });
      }
    }
    (s['x-kubernetes-validations'] ?? []).forEach((rule, i) => {
      try {
        const compiled = compileCel(rule.rule);
        const list = rules.get(s) ?? [];
        list.push(compiled);
        rules.set(s, list);
      } catch (err) {
        if (!(err instanceof CelCompileError)) throw err;
        problems.push({ path: `${path}.x-kubernetes-validations[${i}].rule`, value: rule.rule, detail: `compilation failed: ${err.message}`, type: 'FieldValueInvalid' });
      }
      if (rule.messageExpression !== undefined) {
        try {
          messageExpressions.set(rule, compileCel(rule.messageExpression));
        } catch (err) {
          if (!(err instanceof CelCompileError)) throw err;
          problems.push({ path: `${path}.x-kubernetes-validations[${i}].messageExpression`, value: rule.messageExpression, detail: `compilation failed: ${err.message}`, type: 'FieldValueInvalid' });
        }
      }
    });
    for (const [name, prop] of Object.entries(s.properties ?? {})) walk(prop, `${path}.properties[${name}]`, false);
    if (isObject(s.additionalProperties)) walk(s.additionalProperties as Schema, `${path}.additionalProperties`, false);
    if (s.items) walk(s.items, `${path}.items`, false);
  };
  walk(schema, 'openAPIV3Schema', true);
  return { compiled: { schema, rules, messageExpressions }, problems };
}

function jsonType(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(v: Json, s: Schema): boolean {
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
  switch (s.type) {
    case undefined:
      return true;
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

function quoteList(values: unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

/** Validates value against the schema; `oldValue` enables transition rules (oldSelf). */
export function validateValue(compiled: CompiledSchema, value: Json, oldValue: Json | undefined, rootPath = ''): FieldError[] {
  const errors: FieldError[] = [];
  validateNode(compiled, compiled.schema, value, oldValue, rootPath, errors, true, 'schema');
  if (compiled.rules.size === 0) return errors;
  // As upstream: type errors block the CEL rules, which could not evaluate on such values.
  if (errors.some((e) => e.type === 'FieldValueTypeInvalid')) {
    errors.push({ type: 'FieldValueInvalid', field: '<nil>', value: 'null', hasValue: true, detail: 'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation' });
    return errors;
  }
  validateNode(compiled, compiled.schema, value, oldValue, rootPath, errors, true, 'rules');
  return errors;
}

type Phase = 'schema' | 'rules';

function validateNode(c: CompiledSchema, s: Schema, v: Json, old: Json | undefined, path: string, errors: FieldError[], isRoot: boolean, phase: Phase): void {
  if (phase === 'rules') {
    walkRules(c, s, v, old, path, errors, isRoot);
    return;
  }
  const field = path || '<root>';
  if (v === null) {
    if (!s.nullable && !isRoot) {
      errors.push({ type: 'FieldValueTypeInvalid', field, value: 'null', hasValue: true, detail: `${field} in body must be of type ${s.type ?? 'object'}: "null"` });
    }
    return;
  }
  if (!typeMatches(v, s)) {
    const expected = s['x-kubernetes-int-or-string'] ? 'integer,string' : s.type;
    errors.push({ type: 'FieldValueTypeInvalid', field, value: jsonType(v), hasValue: true, detail: `${field} in body must be of type ${expected}: "${jsonType(v)}"` });
    return;
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    errors.push({ type: 'FieldValueNotSupported', field, value: v, detail: `supported values: ${quoteList(s.enum)}` });
  }
  if (typeof v === 'number') {
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should be less than ${s.exclusiveMaximum ? '' : 'or equal to '}${s.maximum}` });
    }
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should be greater than ${s.exclusiveMinimum ? '' : 'or equal to '}${s.minimum}` });
    }
    if (s.multipleOf !== undefined && v % s.multipleOf !== 0) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should be a multiple of ${s.multipleOf}` });
    }
  }
  if (typeof v === 'string') {
    const length = [...v].length;
    if (s.maxLength !== undefined && length > s.maxLength) {
      errors.push({ type: 'FieldValueTooLong', field, value: v, detail: `may not be more than ${s.maxLength} bytes` });
    }
    if (s.minLength !== undefined && length < s.minLength) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should be at least ${s.minLength} chars long` });
    }
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should match '${s.pattern}'` });
    }
    const formatError = checkFormat(s.format, v);
    if (formatError) errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body must be of type ${s.format}: ${JSON.stringify(v)}` });
  }
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) {
      errors.push({ type: 'FieldValueTooMany', field, value: v.length, hasValue: true, detail: `must have at most ${s.maxItems} items` });
    }
    if (s.minItems !== undefined && v.length < s.minItems) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should have at least ${s.minItems} items` });
    }
    checkListType(s, v, field, errors);
    if (s.items) {
      const items = s.items;
      const oldList = Array.isArray(old) ? old : undefined;
      v.forEach((item, i) => validateNode(c, items, item, correlate(s, item, oldList), `${path}[${i}]`, errors, false, 'schema'));
    }
  }
  if (isObject(v)) {
    for (const req of s.required ?? []) {
      if (v[req] === undefined) errors.push({ type: 'FieldValueRequired', field: join(path, req), detail: '' });
    }
    const n = Object.keys(v).length;
    if (s.maxProperties !== undefined && n > s.maxProperties) {
      errors.push({ type: 'FieldValueTooMany', field, value: n, hasValue: true, detail: `must have at most ${s.maxProperties} items` });
    }
    if (s.minProperties !== undefined && n < s.minProperties) {
      errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should have at least ${s.minProperties} properties` });
    }
    const oldObject = isObject(old) ? old : undefined;
    for (const [key, child] of Object.entries(v)) {
      const prop = s.properties?.[key] ?? (isObject(s.additionalProperties) ? (s.additionalProperties as Schema) : undefined);
      if (prop && !(isRoot && key === 'metadata')) validateNode(c, prop, child, oldObject?.[key], join(path, key), errors, false, 'schema');
    }
  }
  for (const sub of s.allOf ?? []) validateNode(c, { ...sub, type: sub.type ?? s.type }, v, old, path, errors, false, 'schema');
  if (s.anyOf && !s.anyOf.some((sub) => subErrors(c, sub, v, path).length === 0)) {
    errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body must match at least one schema in anyOf` });
  }
  if (s.oneOf && s.oneOf.filter((sub) => subErrors(c, sub, v, path).length === 0).length !== 1) {
    errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body must match exactly one schema in oneOf` });
  }
  if (s.not && subErrors(c, s.not, v, path).length === 0) {
    errors.push({ type: 'FieldValueInvalid', field, value: v, detail: `${field} in body should not match the schema` });
  }
}

function walkRules(c: CompiledSchema, s: Schema, v: Json, old: Json | undefined, path: string, errors: FieldError[], isRoot: boolean): void {
  if (v === null || v === undefined) return;
  if (Array.isArray(v) && s.items) {
    const items = s.items;
    const oldList = Array.isArray(old) ? old : undefined;
    v.forEach((item, i) => walkRules(c, items, item, correlate(s, item, oldList), `${path}[${i}]`, errors, false));
  }
  if (isObject(v)) {
    const oldObject = isObject(old) ? old : undefined;
    for (const [key, child] of Object.entries(v)) {
      const prop = s.properties?.[key] ?? (isObject(s.additionalProperties) ? (s.additionalProperties as Schema) : undefined);
      if (prop && !(isRoot && key === 'metadata')) walkRules(c, prop, child, oldObject?.[key], join(path, key), errors, false);
    }
  }
  runRules(c, s, v, old, path, errors);
}

function subErrors(c: CompiledSchema, s: Schema, v: Json, path: string): FieldError[] {
  const errs: FieldError[] = [];
  validateNode(c, s, v, undefined, path, errs, false, 'schema');
  return errs;
}

/** For map-type lists, an item's old self is the old item with the same keys. */
function correlate(s: Schema, item: Json, oldList: Json[] | undefined): Json | undefined {
  if (!oldList) return undefined;
  const keys = s['x-kubernetes-list-map-keys'];
  if (s['x-kubernetes-list-type'] === 'map' && keys && isObject(item)) {
    return oldList.find((o) => isObject(o) && keys.every((k) => JSON.stringify(o[k]) === JSON.stringify(item[k])));
  }
  if (s['x-kubernetes-list-type'] === 'set') return oldList.find((o) => JSON.stringify(o) === JSON.stringify(item));
  return undefined;
}

function checkListType(s: Schema, v: Json[], field: string, errors: FieldError[]): void {
  const kind = s['x-kubernetes-list-type'];
  if (kind === 'set') {
    const seen = new Set<string>();
    v.forEach((item, i) => {
      const key = JSON.stringify(item);
      if (seen.has(key)) errors.push({ type: 'FieldValueDuplicate', field: `${field}[${i}]`, value: item, detail: '' });
      seen.add(key);
    });
  } else if (kind === 'map') {
    const keys = s['x-kubernetes-list-map-keys'] ?? [];
    const seen = new Set<string>();
    v.forEach((item, i) => {
      if (!isObject(item)) return;
      const key = JSON.stringify(keys.map((k) => item[k]));
      if (seen.has(key)) errors.push({ type: 'FieldValueDuplicate', field: `${field}[${i}]`, value: Object.fromEntries(keys.map((k) => [k, item[k]])), detail: '' });
      seen.add(key);
    });
  }
}

const FORMAT_CHECKS: Record<string, RegExp> = {
  'date-time': /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/,
  date: /^\d{4}-\d{2}-\d{2}$/,
  uuid: /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/,
  hostname: /^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/,
  ipv4: /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$/,
};

function checkFormat(format: string | undefined, v: string): boolean {
  if (!format) return false;
  const re = FORMAT_CHECKS[format];
  return re ? !re.test(v) : false;
}

const RULE_REASONS: Record<string, FieldError['type']> = {
  FieldValueInvalid: 'FieldValueInvalid',
  FieldValueForbidden: 'FieldValueForbidden',
  FieldValueRequired: 'FieldValueRequired',
  FieldValueDuplicate: 'FieldValueDuplicate',
};

function runRules(c: CompiledSchema, s: Schema, v: Json, old: Json | undefined, path: string, errors: FieldError[]): void {
  const compiled = c.rules.get(s);
  if (!compiled) return;
  const specs = s['x-kubernetes-validations'] ?? [];
  compiled.forEach((rule) => {
    const spec = specs.find((r) => r.rule === rule.source);
    if (rule.usesOldSelf && old === undefined && !spec?.optionalOldSelf) return;
    const field = spec?.fieldPath ? `${path}${spec.fieldPath.startsWith('.') || spec.fieldPath.startsWith('[') ? '' : '.'}${spec.fieldPath}` : path || '<root>';
    const typeLabel = jsonType(v) === 'integer' || jsonType(v) === 'number' ? jsonType(v) : jsonType(v);
    let ok: unknown;
    try {
      ok = evaluateCel(rule, { self: v, ...(old !== undefined ? { oldSelf: old } : {}) });
    } catch (err) {
      if (!(err instanceof CelEvalError)) throw err;
      errors.push({ type: 'FieldValueInvalid', field, value: typeLabel, hasValue: true, detail: `${err.message} evaluating rule: ${rule.source}` });
      return;
    }
    if (ok === true) return;
    let message = spec?.message ?? `failed rule: ${rule.source}`;
    const messageExpression = spec ? c.messageExpressions.get(spec) : undefined;
    if (messageExpression) {
      try {
        const m = evaluateCel(messageExpression, { self: v, ...(old !== undefined ? { oldSelf: old } : {}) });
        if (typeof m === 'string' && m.trim() !== '') message = m;
      } catch {
        // the apiserver falls back to `message` when messageExpression fails
      }
    }
    const reason = RULE_REASONS[spec?.reason ?? 'FieldValueInvalid'] ?? 'FieldValueInvalid';
    if (reason === 'FieldValueInvalid') errors.push({ type: reason, field, value: typeLabel, hasValue: true, detail: message });
    else errors.push({ type: reason, field, detail: message, hasValue: false });
  });
}
