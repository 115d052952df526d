import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isSubset } from './subset.ts';

describe('desired ⊆ current', () => {
  it('accepts extra fields the API server or other managers added', () => {
    assert.equal(isSubset({ spec: { replicas: 1 } }, { spec: { replicas: 1, revisionHistoryLimit: 10 }, status: {} }), true);
  });
  it('notices a changed or missing field', () => {
    assert.equal(isSubset({ spec: { replicas: 2 } }, { spec: { replicas: 1 } }), false);
    assert.equal(isSubset({ spec: { image: 'x' } }, { spec: {} }), false);
    assert.equal(isSubset({ a: { b: 1 } }, { a: null }), false);
  });
  it('compares lists element by element and by length', () => {
    assert.equal(isSubset([{ name: 'a' }], [{ name: 'a', protocol: 'TCP' }]), true);
    assert.equal(isSubset([{ name: 'a' }], [{ name: 'a' }, { name: 'b' }]), false);
    assert.equal(isSubset([{ name: 'a' }, { name: 'b' }], [{ name: 'b' }, { name: 'a' }]), false);
  });
  it('ignores undefined desired fields and does not equate 1 with "1"', () => {
    assert.equal(isSubset({ a: undefined, b: 1 }, { b: 1 }), true);
    assert.equal(isSubset({ b: 1 }, { b: '1' }), false);
  });
});
