import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonMergePatch, jsonPatch, strategicMergePatch } from './patch.ts';
import { builtinTypeNode } from './typeinfo.ts';

const deployment = {
  metadata: { name: 'd', finalizers: ['a'] },
  spec: {
    template: {
      spec: {
        containers: [
          { name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
          { name: 'sidecar', image: 'side:1' },
        ],
      },
    },
  },
};

describe('patches', () => {
  it('strategic merge patch merges lists by their merge keys', () => {
    const patched = strategicMergePatch(deployment, { spec: { template: { spec: { containers: [{ name: 'app', image: 'app:2', env: [{ name: 'B', value: '3' }] }] } } } }, builtinTypeNode('Deployment')) as typeof deployment;
    assert.deepEqual(patched.spec.template.spec.containers, [
      { name: 'app', image: 'app:2', env: [{ name: 'A', value: '1' }, { name: 'B', value: '3' }] },
      { name: 'sidecar', image: 'side:1' },
    ]);
  });

  it('strategic merge patch honours $patch: delete, $setElementOrder and scalar-list merges', () => {
    const patched = strategicMergePatch(
      deployment,
      {
        metadata: { finalizers: ['b'] },
        spec: { template: { spec: { $setElementOrder: undefined, containers: [{ name: 'sidecar', $patch: 'delete' }] } } },
      },
      builtinTypeNode('Deployment'),
    ) as typeof deployment;
    assert.deepEqual(patched.spec.template.spec.containers.map((c) => c.name), ['app']);
    assert.deepEqual(patched.metadata.finalizers, ['a', 'b']);
    const reordered = strategicMergePatch(deployment, { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'app' }] } } } }, builtinTypeNode('Deployment')) as typeof deployment;
    assert.deepEqual(reordered.spec.template.spec.containers.map((c) => c.name), ['sidecar', 'app']);
  });

  it('strategic merge patch replaces lists without a merge key', () => {
    const patched = strategicMergePatch({ spec: { template: { spec: { tolerations: [{ key: 'a' }] } } } }, { spec: { template: { spec: { tolerations: [{ key: 'b' }] } } } }, builtinTypeNode('Deployment'));
    assert.deepEqual(patched, { spec: { template: { spec: { tolerations: [{ key: 'b' }] } } } });
  });

  it('JSON merge patch deletes with null and replaces lists', () => {
    assert.deepEqual(jsonMergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1] }, { a: null, b: { c: null }, l: [2] }), { b: { d: 3 }, l: [2] });
  });

  it('JSON patch applies operations in order and fails a failing test', () => {
    assert.deepEqual(jsonPatch({ a: [1] }, [{ op: 'add', path: '/a/-', value: 2 }, { op: 'replace', path: '/a/0', value: 0 }, { op: 'copy', from: '/a', path: '/b' }]), { a: [0, 2], b: [0, 2] });
    assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), /test failed/);
    assert.throws(() => jsonPatch({}, [{ op: 'remove', path: '/missing' }]), /missing/);
  });
});
