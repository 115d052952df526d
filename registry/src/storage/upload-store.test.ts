// The pure rules of upload sessions in storage: which chunks make the upload, how chunks and
// sessions are named.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chunkChain, chunkName, chunkOffset, isUploadId } from './upload-store.ts';

describe('the chunk chain of an upload', () => {
  it('runs from byte 0 through each chunk that starts where the previous one ends', () => {
    assert.deepEqual(chunkChain([{ offset: 5, size: 3 }, { offset: 0, size: 5 }, { offset: 8, size: 1 }]), {
      chain: [{ offset: 0, size: 5 }, { offset: 5, size: 3 }, { offset: 8, size: 1 }],
      size: 9,
    });
    assert.deepEqual(chunkChain([]), { chain: [], size: 0 });
  });

  it('ignores what is off the chain (a gap, an empty chunk): it is never read and never counted', () => {
    assert.deepEqual(chunkChain([{ offset: 0, size: 4 }, { offset: 6, size: 2 }]).size, 4);
    assert.deepEqual(chunkChain([{ offset: 0, size: 0 }, { offset: 1, size: 2 }]).size, 0);
    assert.deepEqual(chunkChain([{ offset: 3, size: 3 }]).size, 0);
  });
});

describe('upload names', () => {
  it('name chunks by their offset so that names sort like offsets', () => {
    const names = [0, 9, 10, 1_000_000, 2 ** 40].map(chunkName);
    assert.deepEqual([...names].sort(), names);
    assert.deepEqual(names.map(chunkOffset), [0, 9, 10, 1_000_000, 2 ** 40]);
    assert.equal(chunkOffset('12'), null);
    assert.equal(chunkOffset('partial-0000000000000000'), null);
  });

  it('take only lower-case UUIDs as upload ids, never a path', () => {
    assert.ok(isUploadId(randomUUID()));
    for (const bad of ['', '..', '../../documents/x', randomUUID().toUpperCase(), `${randomUUID()}/x`, '0'.repeat(36)]) {
      assert.equal(isUploadId(bad), false, bad);
    }
  });
});
