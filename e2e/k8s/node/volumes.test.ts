import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { projectKeys, VolumeError } from './volumes.ts';

const data = { b: Buffer.from('2'), a: Buffer.from('1') };

describe('Secret and ConfigMap projections', () => {
  it('every key as a file with the default mode, without items', () => {
    assert.deepEqual(projectKeys(data, undefined, 0o644, 'x').map((f) => [f.path, f.content.toString(), f.mode]), [['a', '1', 0o644], ['b', '2', 0o644]]);
  });
  it('only the listed items, at their paths and modes', () => {
    const files = projectKeys(data, [{ key: 'b', path: 'dir/b.txt', mode: 0o400 }], 0o644, 'x');
    assert.deepEqual(files.map((f) => [f.path, f.content.toString(), f.mode]), [['dir/b.txt', '2', 0o400]]);
  });
  it('an item naming a missing key fails the mount', () => {
    assert.throws(() => projectKeys(data, [{ key: 'zz', path: 'z' }], 0o644, 'configmap c'), VolumeError);
  });
});
