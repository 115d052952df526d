import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CelCompileError, CelEvalError, compileCel, evaluateCel } from './cel.ts';

const evalRule = (rule: string, self: unknown, oldSelf?: unknown): unknown =>
  evaluateCel(compileCel(rule), { self, ...(oldSelf !== undefined ? { oldSelf } : {}) });

describe('CEL subset', () => {
  it('evaluates the rule shapes CRDs use', () => {
    assert.equal(evalRule('has(self.a) != has(self.b)', { a: 1 }), true);
    assert.equal(evalRule('has(self.a) != has(self.b)', { a: 1, b: 2 }), false);
    assert.equal(evalRule('!has(self.x) || self.x.size() > 0', {}), true);
    assert.equal(evalRule('!has(self.x) || self.x.size() > 0', { x: '' }), false);
    assert.equal(evalRule('self.replicas <= 1 || has(self.storage.gcs)', { replicas: 3, storage: { gcs: {} } }), true);
    assert.equal(evalRule('self.replicas <= 1 || has(self.storage.gcs)', { replicas: 3, storage: {} }), false);
    assert.equal(evalRule("self.mode in ['a', 'b'] ? self.n % 2 == 0 : true", { mode: 'a', n: 4 }), true);
    assert.equal(evalRule("self.name.startsWith('x') && self.name.matches('^[a-z]+$')", { name: 'xyz' }), true);
    assert.equal(evalRule('self.items.all(i, i.size() < 4) && self.items.exists(i, i == "ab")', { items: ['ab', 'abc'] }), true);
    assert.equal(evalRule('size(self.items.filter(i, i > 1)) == 2', { items: [1, 2, 3] }), true);
    assert.equal(evalRule('self.a / 2 == 1 && 7 / 2 == 3', { a: 3 }), true);
    assert.equal(evalRule('self == oldSelf', 'x', 'x'), true);
  });

  it('treats || and && as commutative over errors, as CEL does', () => {
    assert.equal(evalRule('self.missing == 1 || true', {}), true);
    assert.throws(() => evalRule('self.missing == 1', {}), CelEvalError);
  });

  it('rejects what it cannot evaluate at compile time, loudly', () => {
    assert.throws(() => compileCel('self.x.quantity()'), CelCompileError);
    assert.throws(() => compileCel('duration(self.d) > duration("1s")'), /undeclared reference to 'duration'/);
    assert.throws(() => compileCel('self.a ==='), CelCompileError);
    assert.throws(() => compileCel('other.a'), /undeclared reference to 'other'/);
  });

  it('notices transition rules', () => {
    assert.equal(compileCel('self.a == oldSelf.a').usesOldSelf, true);
    assert.equal(compileCel('self.a == 1').usesOldSelf, false);
  });
});
