// Label and field selectors, parsed as the apiserver parses them and matched against objects.
import { badRequest } from './errors.ts';

export type LabelRequirement =
  | { op: 'exists' | '!'; key: string }
  | { op: '=' | '!='; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] };

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string): string {
  if (!KEY.test(key)) throw badRequest(`unable to parse requirement: invalid label key "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return key;
}

function checkValue(value: string): string {
  if (!VALUE.test(value) || value.length > 63) throw badRequest(`unable to parse requirement: invalid label value: "${value}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return value;
}

/** Splits on top-level commas (commas inside `in (...)` belong to the requirement). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(selector: string): LabelRequirement[] {
  return splitTopLevel(selector).map((part) => {
    let m = /^!\s*(\S+)$/.exec(part);
    if (m) return { op: '!', key: checkKey(m[1] ?? '') };
    m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
    if (m) {
      const values = (m[3] ?? '').split(',').map((v) => checkValue(v.trim()));
      return { op: m[2] as 'in' | 'notin', key: checkKey(m[1] ?? ''), values };
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) return { op: m[2] === '!=' ? '!=' : '=', key: checkKey(m[1] ?? ''), value: checkValue(m[3] ?? '') };
    if (/^[^=!\s()]+$/.test(part)) return { op: 'exists', key: checkKey(part) };
    throw badRequest(`unable to parse requirement: found '${part}', expected: identifier`);
  });
}

export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case '!':
        return !has;
      case '=':
        return has && v === r.value;
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v ?? '');
      case 'notin':
        return !has || !r.values.includes(v ?? '');
    }
  });
}

/** A metav1.LabelSelector (matchLabels + matchExpressions) as requirements. */
export function labelSelectorRequirements(selector: unknown): LabelRequirement[] | undefined {
  if (typeof selector !== 'object' || selector === null) return undefined;
  const s = selector as { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  const reqs: LabelRequirement[] = Object.entries(s.matchLabels ?? {}).map(([key, value]) => ({ op: '=', key, value }));
  for (const e of s.matchExpressions ?? []) {
    if (e.operator === 'In') reqs.push({ op: 'in', key: e.key, values: e.values ?? [] });
    else if (e.operator === 'NotIn') reqs.push({ op: 'notin', key: e.key, values: e.values ?? [] });
    else if (e.operator === 'Exists') reqs.push({ op: 'exists', key: e.key });
    else if (e.operator === 'DoesNotExist') reqs.push({ op: '!', key: e.key });
  }
  return reqs;
}

/** Renders requirements the way apimachinery prints a selector (`app=web,tier in (a,b)`). */
export function formatLabelSelector(reqs: LabelRequirement[]): string {
  return reqs
    .map((r) => {
      switch (r.op) {
        case 'exists':
          return r.key;
        case '!':
          return `!${r.key}`;
        case '=':
          return `${r.key}=${r.value}`;
        case '!=':
          return `${r.key}!=${r.value}`;
        case 'in':
        case 'notin':
          return `${r.key} ${r.op} (${[...r.values].sort().join(',')})`;
      }
    })
    .join(',');
}

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

function unescapeField(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

export function parseFieldSelector(selector: string): FieldRequirement[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i] ?? '';
    if (ch === '\\') {
      cur += ch + (selector[i + 1] ?? '');
      i++;
    } else if (ch === ',') {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => {
      const m = /^((?:[^=!\\]|\\.)+)(==|=|!=)(.*)$/.exec(p);
      if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${p}'`);
      return { field: unescapeField(m[1] ?? '').trim(), op: m[2] === '!=' ? '!=' : '=', value: unescapeField(m[3] ?? '') };
    });
}

export function matchesFields(reqs: FieldRequirement[], fields: Record<string, string>): boolean {
  return reqs.every((r) => {
    const v = fields[r.field] ?? '';
    return r.op === '=' ? v === r.value : v !== r.value;
  });
}
