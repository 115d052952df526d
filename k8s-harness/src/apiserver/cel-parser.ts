// CEL tokens to an expression tree, by precedence climbing; macros and the functions of the
// supported subset are recognised here, anything else is a CelCompileError.
import { CelCompileError } from './cel-errors.ts';
import type { Token } from './cel-lexer.ts';

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

export class Parser {
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
