// The JSONPath subset CRD printer columns and scale subresources use: `.a.b`, `['a.b']`,
// `[0]`, `[*]`, `..` is not supported, and filters `[?(@.type=="Ready")]`.

type Step =
  | { k: 'field'; name: string }
  | { k: 'index'; index: number }
  | { k: 'all' }
  | { k: 'filter'; path: Step[]; op: '==' | '!='; value: unknown };

export class JsonPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonPathError';
  }
}

export function parseJsonPath(path: string): Step[] {
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  if (p.startsWith('$')) p = p.slice(1);
  const steps: Step[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === '.') {
      if (p[i + 1] === '.') throw new JsonPathError(`recursive descent is not supported: ${path}`);
      const m = /^[A-Za-z0-9_\-/$]+/.exec(p.slice(i + 1));
      if (!m) throw new JsonPathError(`bad field at ${i} in ${path}`);
      steps.push({ k: 'field', name: m[0] });
      i += 1 + m[0].length;
      continue;
    }
    if (c === '[') {
      const close = p.indexOf(']', i);
      if (close < 0) throw new JsonPathError(`unterminated [ in ${path}`);
      const inner = p.slice(i + 1, close).trim();
      i = close + 1;
      if (inner === '*') steps.push({ k: 'all' });
      else if (/^-?\d+$/.test(inner)) steps.push({ k: 'index', index: Number(inner) });
      else if (/^'.*'$|^".*"$/.test(inner)) steps.push({ k: 'field', name: inner.slice(1, -1) });
      else {
        const m = /^\?\(@((?:\.[A-Za-z0-9_\-/]+)+)\s*(==|!=)\s*(.+)\)$/.exec(inner);
        if (!m) throw new JsonPathError(`unsupported expression [${inner}] in ${path}`);
        const raw = (m[3] ?? '').trim();
        const value = /^'.*'$|^".*"$/.test(raw) ? raw.slice(1, -1) : raw === 'true' ? true : raw === 'false' ? false : Number(raw);
        steps.push({ k: 'filter', path: parseJsonPath(m[1] ?? ''), op: m[2] as '==' | '!=', value });
      }
      continue;
    }
    throw new JsonPathError(`unexpected '${c}' at ${i} in ${path}`);
  }
  return steps;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function evaluateJsonPath(steps: Step[], root: unknown): unknown[] {
  let current: unknown[] = [root];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of current) {
      switch (step.k) {
        case 'field':
          if (isObject(v) && v[step.name] !== undefined) next.push(v[step.name]);
          break;
        case 'index':
          if (Array.isArray(v)) {
            const idx = step.index < 0 ? v.length + step.index : step.index;
            if (idx >= 0 && idx < v.length) next.push(v[idx]);
          }
          break;
        case 'all':
          if (Array.isArray(v)) next.push(...v);
          else if (isObject(v)) next.push(...Object.values(v));
          break;
        case 'filter':
          if (Array.isArray(v)) {
            for (const item of v) {
              const got = evaluateJsonPath(step.path, item);
              const hit = got.some((g) => g === step.value || String(g) === String(step.value));
              if (step.op === '==' ? hit : !hit && got.length > 0) next.push(item);
            }
          }
          break;
      }
    }
    current = next;
  }
  return current;
}

/** Reads one value (the first match) or undefined. */
export function readPath(path: string, root: unknown): unknown {
  return evaluateJsonPath(parseJsonPath(path), root)[0];
}

/** Writes a value at a simple `.a.b.c` path, creating objects on the way. */
export function writePath(path: string, root: Record<string, unknown>, value: unknown): void {
  const steps = parseJsonPath(path);
  let cur: Record<string, unknown> = root;
  steps.forEach((s, i) => {
    if (s.k !== 'field') throw new JsonPathError(`only field paths can be written: ${path}`);
    if (i === steps.length - 1) {
      cur[s.name] = value;
      return;
    }
    const nextValue = cur[s.name];
    if (!isObject(nextValue)) cur[s.name] = {};
    cur = cur[s.name] as Record<string, unknown>;
  });
}
