// CEL source text to tokens: numbers, strings, identifiers and operators.
import { CelCompileError } from './cel-errors.ts';

export type Token =
  | { t: 'num'; v: number; int: boolean; pos: number }
  | { t: 'str'; v: string; pos: number }
  | { t: 'id'; v: string; pos: number }
  | { t: 'op'; v: string; pos: number }
  | { t: 'eof'; pos: number };

const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '+', '-', '*', '/', '%', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}'];

export function tokenize(src: string): Token[] {
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
