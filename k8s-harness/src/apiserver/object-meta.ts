// ObjectMeta as the server keeps it: the fields only it sets, its timestamps and generated names,
// the field manager of a write, and the validation of labels, annotations and owner references.
import { randomInt } from 'node:crypto';
import type { WriteOptions } from './api-options.ts';
import type { FieldError } from './errors.ts';
import { obj, type JsonObject } from './json.ts';

export function nowTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function generatedSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += GENERATE_ALPHABET[randomInt(GENERATE_ALPHABET.length)];
  return s;
}

/** metadata fields only the server sets; a write keeps the stored values. */
export const SYSTEM_META = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink'];

/** The field manager of a write: the one the client named, or its user agent's program name. */
export function managerFor(opts: WriteOptions): string {
  if (opts.fieldManager) return opts.fieldManager;
  const agent = opts.userAgent.split('/')[0] ?? '';
  return agent || 'unknown';
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function validateMetadata(meta: JsonObject): FieldError[] {
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(obj(meta.labels))) {
    if (!QUALIFIED_NAME.test(k) || (k.split('/').pop() ?? '').length > 63) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', value: k, detail: "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')" });
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', value: v, detail: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')" });
  }
  let annotationBytes = 0;
  for (const [k, v] of Object.entries(obj(meta.annotations))) {
    if (!QUALIFIED_NAME.test(k.toLowerCase())) errors.push({ type: 'FieldValueInvalid', field: 'metadata.annotations', value: k, detail: "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character" });
    annotationBytes += k.length + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
  }
  if (annotationBytes > 256 * 1024) errors.push({ type: 'FieldValueTooLong', field: 'metadata.annotations', detail: 'must have at most 262144 bytes', hasValue: false });
  if (Array.isArray(meta.ownerReferences)) {
    meta.ownerReferences.forEach((r, i) => {
      const ref = obj(r);
      for (const f of ['apiVersion', 'kind', 'name', 'uid']) {
        if (typeof ref[f] !== 'string' || ref[f] === '') errors.push({ type: f === 'uid' || f === 'name' ? 'FieldValueInvalid' : 'FieldValueInvalid', field: `metadata.ownerReferences[${i}].${f}`, value: ref[f] ?? '', detail: `${f} must not be empty` });
      }
    });
    const controllers = meta.ownerReferences.filter((r) => obj(r).controller === true);
    if (controllers.length > 1) errors.push({ type: 'FieldValueInvalid', field: 'metadata.ownerReferences', value: meta.ownerReferences, detail: 'Only one reference can have Controller set to true' });
  }
  return errors;
}
