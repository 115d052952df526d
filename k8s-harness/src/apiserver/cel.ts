// A subset of CEL, enough for the x-kubernetes-validations rules CRDs commonly carry:
// field access, has(), size(), comparisons, arithmetic, logic, `in`, ternaries, string
// functions (startsWith, endsWith, contains, matches, lowerAscii, upperAscii), list and map
// literals and the all/exists/exists_one/filter/map macros. Anything else fails to compile,
// so a CRD using it is rejected at creation instead of its rule silently passing.
// Lexer, parser and evaluator are cel-lexer.ts, cel-parser.ts and cel-eval.ts.
import { evaluate } from './cel-eval.ts';
import { tokenize } from './cel-lexer.ts';
import { Parser, type Expr } from './cel-parser.ts';

export { CelCompileError, CelEvalError } from './cel-errors.ts';

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

/** Evaluates a compiled rule; throws CelEvalError when evaluation fails (no such key, bad types). */
export function evaluateCel(rule: CompiledRule, vars: Record<string, unknown>): unknown {
  return evaluate(rule.expr, new Map(Object.entries(vars)));
}
