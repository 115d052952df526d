// Evaluating an expression tree against the rule's variables (self, oldSelf), with CEL's
// equality, ordering, errors that || and && may absorb, and the macros.
import { CelEvalError } from './cel-errors.ts';
import type { Expr } from './cel-parser.ts';

type Env = Map<string, unknown>;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null_type';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'object') return 'map';
  return typeof v;
}

function celEquals(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && celEquals(a[k], b[k]));
  }
  return a === b;
}

function compare(op: string, a: unknown, b: unknown): boolean {
  if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string') || (typeof a === 'boolean' && typeof b === 'boolean'))) {
    throw new CelEvalError(`no such overload: ${typeName(a)} ${op} ${typeName(b)}`);
  }
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    default: return a >= b;
  }
}

function asBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new CelEvalError(`no such overload: ${what} applied to ${typeName(v)}`);
  return v;
}

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return [...v].length;
  if (Array.isArray(v)) return v.length;
  if (isMap(v)) return Object.keys(v).length;
  throw new CelEvalError(`no such overload: size(${typeName(v)})`);
}

export function evaluate(e: Expr, env: Env): unknown {
  switch (e.k) {
    case 'lit':
      return e.v;
    case 'ident': {
      if (!env.has(e.name)) throw new CelEvalError(`undeclared reference to '${e.name}'`);
      return env.get(e.name);
    }
    case 'select': {
      const target = evaluate(e.target, env);
      if (!isMap(target)) throw new CelEvalError(`no such key: ${e.field}`);
      if (!(e.field in target)) throw new CelEvalError(`no such key: ${e.field}`);
      return target[e.field];
    }
    case 'has': {
      const target = evaluate(e.target, env);
      if (!isMap(target)) throw new CelEvalError(`invalid type for field selection: ${typeName(target)}`);
      return e.field in target && target[e.field] !== null && target[e.field] !== undefined;
    }
    case 'index': {
      const target = evaluate(e.target, env);
      const index = evaluate(e.index, env);
      if (Array.isArray(target) && typeof index === 'number') {
        if (index < 0 || index >= target.length) throw new CelEvalError(`index out of bounds: ${index}`);
        return target[index];
      }
      if (isMap(target) && typeof index === 'string') {
        if (!(index in target)) throw new CelEvalError(`no such key: ${index}`);
        return target[index];
      }
      throw new CelEvalError(`no such overload: ${typeName(target)}[${typeName(index)}]`);
    }
    case 'unary': {
      const v = evaluate(e.arg, env);
      if (e.op === '!') return !asBool(v, '!_');
      if (typeof v !== 'number') throw new CelEvalError(`no such overload: -${typeName(v)}`);
      return -v;
    }
    case 'cond':
      return asBool(evaluate(e.test, env), '_?_:_') ? evaluate(e.then, env) : evaluate(e.else, env);
    case 'list':
      return e.items.map((i) => evaluate(i, env));
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of e.entries) out[String(evaluate(k, env))] = evaluate(v, env);
      return out;
    }
    case 'binary':
      return evalBinary(e.op, e.left, e.right, env);
    case 'call':
      return evalCall(e, env);
    case 'macro':
      return evalMacro(e, env);
  }
}

function evalBinary(op: string, l: Expr, r: Expr, env: Env): unknown {
  if (op === '&&' || op === '||') {
    // CEL's logical operators are commutative over errors: false && error == false.
    let left: unknown;
    let leftError: unknown;
    try {
      left = asBool(evaluate(l, env), op);
    } catch (err) {
      leftError = err;
    }
    if (leftError === undefined && left === (op === '||')) return left;
    const right = asBool(evaluate(r, env), op);
    if (right === (op === '||')) return right;
    if (leftError !== undefined) throw leftError;
    return right;
  }
  const a = evaluate(l, env);
  const b = evaluate(r, env);
  switch (op) {
    case '==':
      return celEquals(a, b);
    case '!=':
      return !celEquals(a, b);
    case '<':
    case '<=':
    case '>':
    case '>=':
      return compare(op, a, b);
    case 'in':
      if (Array.isArray(b)) return b.some((x) => celEquals(x, a));
      if (isMap(b) && typeof a === 'string') return a in b;
      throw new CelEvalError(`no such overload: ${typeName(a)} in ${typeName(b)}`);
    case '+':
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
      throw new CelEvalError(`no such overload: ${typeName(a)} + ${typeName(b)}`);
    case '-':
    case '*':
    case '/':
    case '%': {
      if (typeof a !== 'number' || typeof b !== 'number') throw new CelEvalError(`no such overload: ${typeName(a)} ${op} ${typeName(b)}`);
      if (op === '-') return a - b;
      if (op === '*') return a * b;
      const ints = Number.isInteger(a) && Number.isInteger(b);
      if (ints && b === 0) throw new CelEvalError(op === '/' ? 'division by zero' : 'modulus by zero');
      if (op === '/') return ints ? Math.trunc(a / b) : a / b;
      return a % b;
    }
  }
  throw new CelEvalError(`unknown operator ${op}`);
}

function evalCall(e: Extract<Expr, { k: 'call' }>, env: Env): unknown {
  const args = e.args.map((a) => evaluate(a, env));
  if (e.target) {
    const t = evaluate(e.target, env);
    const str = (what: string): string => {
      if (typeof t !== 'string') throw new CelEvalError(`no such overload: ${typeName(t)}.${what}()`);
      return t;
    };
    const arg = (i: number): string => {
      const a = args[i];
      if (typeof a !== 'string') throw new CelEvalError(`no such overload: ${e.fn}(${typeName(a)})`);
      return a;
    };
    switch (e.fn) {
      case 'size': return sizeOf(t);
      case 'startsWith': return str(e.fn).startsWith(arg(0));
      case 'endsWith': return str(e.fn).endsWith(arg(0));
      case 'contains': return str(e.fn).includes(arg(0));
      case 'matches': return new RegExp(arg(0), 'u').test(str(e.fn));
      case 'lowerAscii': return str(e.fn).replace(/[A-Z]/g, (c) => c.toLowerCase());
      case 'upperAscii': return str(e.fn).replace(/[a-z]/g, (c) => c.toUpperCase());
      case 'trim': return str(e.fn).trim();
      case 'indexOf': return str(e.fn).indexOf(arg(0));
      case 'lastIndexOf': return str(e.fn).lastIndexOf(arg(0));
      case 'replace': return str(e.fn).split(arg(0)).join(arg(1));
      case 'split': return str(e.fn).split(arg(0));
      case 'substring': {
        const s = [...str(e.fn)];
        return s.slice(Number(args[0]), args[1] === undefined ? undefined : Number(args[1])).join('');
      }
      case 'join': {
        if (!Array.isArray(t)) throw new CelEvalError(`no such overload: ${typeName(t)}.join()`);
        return t.map(String).join(args[0] === undefined ? '' : arg(0));
      }
    }
    throw new CelEvalError(`unknown function ${e.fn}`);
  }
  const a = args[0];
  switch (e.fn) {
    case 'size': return sizeOf(a);
    case 'matches': {
      if (typeof a !== 'string' || typeof args[1] !== 'string') throw new CelEvalError('no such overload: matches');
      return new RegExp(args[1], 'u').test(a);
    }
    case 'int': {
      const n = typeof a === 'string' ? Number(a) : a;
      if (typeof n !== 'number' || Number.isNaN(n)) throw new CelEvalError(`cannot convert ${typeName(a)} to int`);
      return Math.trunc(n);
    }
    case 'uint': {
      const n = typeof a === 'string' ? Number(a) : a;
      if (typeof n !== 'number' || Number.isNaN(n) || n < 0) throw new CelEvalError(`cannot convert ${typeName(a)} to uint`);
      return Math.trunc(n);
    }
    case 'double': {
      const n = typeof a === 'string' ? Number(a) : a;
      if (typeof n !== 'number' || Number.isNaN(n)) throw new CelEvalError(`cannot convert ${typeName(a)} to double`);
      return n;
    }
    case 'string': return typeof a === 'object' ? JSON.stringify(a) : String(a);
    case 'bool': {
      if (typeof a === 'boolean') return a;
      if (a === 'true' || a === 'false') return a === 'true';
      throw new CelEvalError(`cannot convert ${typeName(a)} to bool`);
    }
    case 'type': return typeName(a);
  }
  throw new CelEvalError(`unknown function ${e.fn}`);
}

function evalMacro(e: Extract<Expr, { k: 'macro' }>, env: Env): unknown {
  const target = evaluate(e.target, env);
  const elements = Array.isArray(target) ? target : isMap(target) ? Object.keys(target) : undefined;
  if (!elements) throw new CelEvalError(`no such overload: ${typeName(target)}.${e.fn}()`);
  const run = (x: unknown, body: Expr): unknown => {
    const inner = new Map(env);
    inner.set(e.v, x);
    return evaluate(body, inner);
  };
  switch (e.fn) {
    case 'all': return elements.every((x) => asBool(run(x, e.body), 'all'));
    case 'exists': return elements.some((x) => asBool(run(x, e.body), 'exists'));
    case 'exists_one': return elements.filter((x) => asBool(run(x, e.body), 'exists_one')).length === 1;
    case 'filter': return elements.filter((x) => asBool(run(x, e.body), 'filter'));
    case 'map': {
      const mapBody = e.mapBody;
      if (mapBody) return elements.filter((x) => asBool(run(x, e.body), 'map')).map((x) => run(x, mapBody));
      return elements.map((x) => run(x, e.body));
    }
  }
}
