import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultDeflateThreads, DeflatePool } from './deflate-pool.ts';

describe('defaultDeflateThreads', () => {
  it('oversubscribes the cores by one when packing is the process’s only job', () => {
    assert.equal(defaultDeflateThreads('pack', 2, 4), 3);
    assert.equal(defaultDeflateThreads('pack', 8, 16), 9);
  });

  it('leaves a core to a server’s event loop', () => {
    assert.equal(defaultDeflateThreads('serve', 2, 4), 1);
    assert.equal(defaultDeflateThreads('serve', 8, 16), 7);
  });

  it('keeps a pool thread for the file system, and deflates at least one block', () => {
    assert.equal(defaultDeflateThreads('pack', 8, 4), 3);
    assert.equal(defaultDeflateThreads('serve', 8, 4), 3);
    assert.equal(defaultDeflateThreads('serve', 1, 4), 1);
    assert.equal(defaultDeflateThreads('pack', 2, 1), 1);
  });
});

describe('DeflatePool', () => {
  it('is sized for its purpose unless told a number of threads', () => {
    assert.equal(new DeflatePool({ purpose: 'serve', threads: 5 }).threads, 5);
    const serving = new DeflatePool({ purpose: 'serve' });
    const packing = new DeflatePool();
    assert.equal(packing.purpose, 'pack');
    assert.ok(serving.threads < packing.threads || serving.threads === 1, `serve ${serving.threads}, pack ${packing.threads}`);
  });
});
