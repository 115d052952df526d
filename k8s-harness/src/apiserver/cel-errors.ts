// What goes wrong with a CEL rule: it does not compile (syntax, or outside the supported subset),
// or its evaluation fails (no such key, wrong types).
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
