// A subset of CEL, enough for the x-kubernetes-validations rules CRDs commonly carry:
// field access, has(), size(), comparisons, arithmetic, logic, `in`, ternaries, string
// functions (startsWith, endsWith, contains, matches, lowerAscii, upperAscii), list and map
// literals and the all/exists/exists_one/filter/map macros. Anything else fails to compile,
// so a CRD using it is rejected at creation instead of its rule silently passing.

export class CelCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CelCompileError';
  }
}

export class CelEvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CelEvalError';
  }
}

type Token =
  | { t: 'num'; v: number; int: boolean; pos: number }
  | { t: 'str'; v: string; pos: number }
  | { t: 'id'; v: string; pos: number }
  | { t: 'op'; v: string; pos: number }
  | { t: 'eof'; pos: number };

const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '+', '-', '*', '/', '%', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}'];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] ?? '';
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(u)?/.exec(src.slice(i));
      if (!m) throw new CelCompileError(`bad number at ${i}`);
      const text = m[1] ?? '';
      const int = !/[.eE]/.test(text) || text.startsWith('0x');
      out.push({ t: 'num', v: Number(text), int, pos: start });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const raw = (c === 'r' || c === 'R') && (src[i + 1] === '"' || src[i + 1] === "'");
      if (!raw) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
        const word = m?.[0] ?? c;
        out.push({ t: 'id', v: word, pos: start });
        i += word.length;
        continue;
      }
    }
    if (c === '"' || c === "'" || ((c === 'r' || c === 'R') && (src[i + 1] === '"' || src[i + 1] === "'"))) {
      const raw = c === 'r' || c === 'R';
      if (raw) i++;
      const q = src[i] ?? '';
      const triple = src.slice(i, i + 3) === q.repeat(3);
      const close = triple ? q.repeat(3) : q;
      i += close.length;
      let s = '';
      while (i < src.length && src.slice(i, i + close.length) !== close) {
        const ch = src[i] ?? '';
        if (ch === '\\' && !raw) {
          const n = src[i + 1] ?? '';
          const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", '`': '`', '?': '?', a: '\x07', b: '\b', f: '\f', v: '\v' };
          if (n in esc) {
            s += esc[n];
            i += 2;
            continue;
          }
          if (n === 'u' || n === 'x') {
            const len = n === 'u' ? 4 : 2;
            s += String.fromCodePoint(parseInt(src.slice(i + 2, i + 2 + len), 16));
            i += 2 + len;
            continue;
          }
          throw new CelCompileError(`unsupported escape \\${n} at ${i}`);
        }
        s += ch;
        i++;
      }
      if (i >= src.length) throw new CelCompileError(`unterminated string at ${start}`);
      i += close.length;
      out.push({ t: 'str', v: s, pos: start });
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) throw new CelCompileError(`unexpected character '${c}' at ${i}`);
    out.push({ t: 'op', v: op, pos: start });
    i += op.length;
  }
  out.push({ t: 'eof', pos: src.length });
  return out;
}

export type Expr =
  | { k: 'lit'; v: unknown; int?: boolean }
  | { k: 'ident'; name: string }
  | { k: 'select'; target: Expr; field: string }
  | { k: 'index'; target: Expr; index: Expr }
  | { k: 'call'; fn: string; target?: Expr; args: Expr[] }
  | { k: 'has'; target: Expr; field: string }
  | { k: 'macro'; fn: 'all' | 'exists' | 'exists_one' | 'filter' | 'map'; target: Expr; v: string; body: Expr; mapBody?: Expr }
  | { k: 'unary'; op: '!' | '-'; arg: Expr }
  | { k: 'binary'; op: string; left: Expr; right: Expr }
  | { k: 'cond'; test: Expr; then: Expr; else: Expr }
  | { k: 'list'; items: Expr[] }
  | { k: 'map'; entries: [Expr, Expr][] };

const GLOBAL_FUNCTIONS = new Set(['size', 'int', 'uint', 'double', 'string', 'bool', 'type', 'matches']);
const MEMBER_FUNCTIONS = new Set(['size', 'startsWith', 'endsWith', 'contains', 'matches', 'lowerAscii', 'upperAscii', 'trim', 'indexOf', 'lastIndexOf', 'join', 'split', 'replace', 'substring']);
const MACROS = new Set(['all', 'exists', 'exists_one', 'filter', 'map']);

const BINARY_PRECEDENCE: Record<string, number> = {
  '||': 1,
  '&&': 2,
  '==': 3, '!=': 3, '<': 3, '<=': 3, '>': 3, '>=': 3, in: 3,
  '+': 4, '-': 4,
  '*': 5, '/': 5, '%': 5,
};

class Parser {
  private i = 0;
  private readonly tokens: Token[];
  private readonly variables: Set<string>;
  constructor(tokens: Token[], variables: Set<string>) {
    this.tokens = tokens;
    this.variables = variables;
  }

  private peek(): Token {
    return this.tokens[this.i] ?? { t: 'eof', pos: 0 };
  }
  private next(): Token {
    const t = this.peek();
    this.i++;
    return t;
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private expectOp(v: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new CelCompileError(`expected '${v}' at ${t.pos}`);
  }

  parseAll(): Expr {
    const e = this.parseExpr();
    const t = this.peek();
    if (t.t !== 'eof') throw new CelCompileError(`unexpected token at ${t.pos}`);
    return e;
  }

  parseExpr(): Expr {
    const test = this.parseBinary(1);
    if (this.isOp('?')) {
      this.next();
      const then = this.parseBinary(1);
      this.expectOp(':');
      const otherwise = this.parseExpr();
      return { k: 'cond', test, then, else: otherwise };
    }
    return test;
  }

  private binaryOp(): string | undefined {
    const t = this.peek();
    if (t.t === 'op' && t.v in BINARY_PRECEDENCE) return t.v;
    if (t.t === 'id' && t.v === 'in') return 'in';
    return undefined;
  }

  private parseBinary(minPrec: number): Expr {
    let left = this.parseUnary();
    for (;;) {
      const op = this.binaryOp();
      if (!op) return left;
      const prec = BINARY_PRECEDENCE[op] ?? 0;
      if (prec < minPrec) return left;
      this.next();
      const right = this.parseBinary(prec + 1);
      left = { k: 'binary', op, left, right };
    }
  }

  private parseUnary(): Expr {
    if (this.isOp('!')) {
      this.next();
      return { k: 'unary', op: '!', arg: this.parseUnary() };
    }
    if (this.isOp('-')) {
      this.next();
      return { k: 'unary', op: '-', arg: this.parseUnary() };
    }
    return this.parsePostfix(this.parsePrimary());
  }

  private parseArgs(): Expr[] {
    const args: Expr[] = [];
    if (this.isOp(')')) {
      this.next();
      return args;
    }
    for (;;) {
      args.push(this.parseExpr());
      if (this.isOp(',')) {
        this.next();
        continue;
      }
      this.expectOp(')');
      return args;
    }
  }

  private parsePostfix(e: Expr): Expr {
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const id = this.next();
        if (id.t !== 'id') throw new CelCompileError(`expected field name at ${id.pos}`);
        if (this.isOp('(')) {
          this.next();
          if (MACROS.has(id.v)) {
            const v = this.next();
            if (v.t !== 'id') throw new CelCompileError(`${id.v}() needs a variable name first, at ${v.pos}`);
            this.expectOp(',');
            this.variables.add(v.v);
            const body = this.parseExpr();
            let mapBody: Expr | undefined;
            if (id.v === 'map' && this.isOp(',')) {
              this.next();
              mapBody = this.parseExpr();
            }
            this.expectOp(')');
            e = { k: 'macro', fn: id.v as 'all', target: e, v: v.v, body, ...(mapBody ? { mapBody } : {}) };
            continue;
          }
          if (!MEMBER_FUNCTIONS.has(id.v)) throw new CelCompileError(`undeclared reference to '${id.v}' (not in the CEL subset this API server evaluates)`);
          e = { k: 'call', fn: id.v, target: e, args: this.parseArgs() };
          continue;
        }
        e = { k: 'select', target: e, field: id.v };
        continue;
      }
      if (this.isOp('[')) {
        this.next();
        const index = this.parseExpr();
        this.expectOp(']');
        e = { k: 'index', target: e, index };
        continue;
      }
      return e;
    }
  }

  private parsePrimary(): Expr {
    const t = this.next();
    if (t.t === 'num') return { k: 'lit', v: t.v, int: t.int };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'op' && t.v === '(') {
      const e = this.parseExpr();
      this.expectOp(')');
      return e;
    }
    if (t.t === 'op' && t.v === '[') {
      const items: Expr[] = [];
      while (!this.isOp(']')) {
        items.push(this.parseExpr());
        if (!this.isOp(']')) this.expectOp(',');
      }
      this.next();
      return { k: 'list', items };
    }
    if (t.t === 'op' && t.v === '{') {
      const entries: [Expr, Expr][] = [];
      while (!this.isOp('}')) {
        const key = this.parseExpr();
        this.expectOp(':');
        entries.push([key, this.parseExpr()]);
        if (!this.isOp('}')) this.expectOp(',');
      }
      this.next();
      return { k: 'map', entries };
    }
    if (t.t === 'id') {
      if (t.v === 'true' || t.v === 'false') return { k: 'lit', v: t.v === 'true' };
      if (t.v === 'null') return { k: 'lit', v: null };
      if (this.isOp('(')) {
        this.next();
        if (t.v === 'has') {
          const arg = this.parseExpr();
          this.expectOp(')');
          if (arg.k !== 'select') throw new CelCompileError('invalid argument to has() macro');
          return { k: 'has', target: arg.target, field: arg.field };
        }
        if (!GLOBAL_FUNCTIONS.has(t.v)) throw new CelCompileError(`undeclared reference to '${t.v}' (not in the CEL subset this API server evaluates)`);
        return { k: 'call', fn: t.v, args: this.parseArgs() };
      }
      if (!this.variables.has(t.v)) throw new CelCompileError(`undeclared reference to '${t.v}'`);
      return { k: 'ident', name: t.v };
    }
    throw new CelCompileError(`unexpected token at ${t.pos}`);
  }
}

export interface CompiledRule {
  source: string;
  expr: Expr;
  usesOldSelf: boolean;
}

/** Throws CelCompileError for syntax errors and for anything outside the supported subset. */
export function compileCel(source: string, variables: string[] = ['self', 'oldSelf']): CompiledRule {
  const expr = new Parser(tokenize(source), new Set(variables)).parseAll();
  return { source, expr, usesOldSelf: mentions(expr, 'oldSelf') };
}

function mentions(e: Expr, name: string): boolean {
  switch (e.k) {
    case 'ident':
      return e.name === name;
    case 'lit':
      return false;
    case 'select':
    case 'has':
      return mentions(e.target, name);
    case 'index':
      return mentions(e.target, name) || mentions(e.index, name);
    case 'call':
      return (e.target ? mentions(e.target, name) : false) || e.args.some((a) => mentions(a, name));
    case 'macro':
      return mentions(e.target, name) || mentions(e.body, name) || (e.mapBody ? mentions(e.mapBody, name) : false);
    case 'unary':
      return mentions(e.arg, name);
    case 'binary':
      return mentions(e.left, name) || mentions(e.right, name);
    case 'cond':
      return mentions(e.test, name) || mentions(e.then, name) || mentions(e.else, name);
    case 'list':
      return e.items.some((i) => mentions(i, name));
    case 'map':
      return e.entries.some(([k, v]) => mentions(k, name) || mentions(v, name));
  }
}

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

function evaluate(e: Expr, env: Env): unknown {
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

/** Evaluates a compiled rule; throws CelEvalError when evaluation fails (no such key, bad types). */
export function evaluateCel(rule: CompiledRule, vars: Record<string, unknown>): unknown {
  return evaluate(rule.expr, new Map(Object.entries(vars)));
}
