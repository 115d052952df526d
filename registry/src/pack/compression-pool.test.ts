import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCompressionThreads, CompressionPool } from './compression-pool.ts';

describe('defaultCompressionThreads', () => {
  it('oversubscribes the cores by one when packing is the process’s only job', () => {
    assert.equal(defaultCompressionThreads('pack', 2, 4), 3);
    assert.equal(defaultCompressionThreads('pack', 8, 16), 9);
  });

  it('leaves a core to a server’s event loop', () => {
    assert.equal(defaultCompressionThreads('serve', 2, 4), 1);
    assert.equal(defaultCompressionThreads('serve', 8, 16), 7);
  });

  it('keeps a pool thread for the file system, and deflates at least one block', () => {
    assert.equal(defaultCompressionThreads('pack', 8, 4), 3);
    assert.equal(defaultCompressionThreads('serve', 8, 4), 3);
    assert.equal(defaultCompressionThreads('serve', 1, 4), 1);
    assert.equal(defaultCompressionThreads('pack', 2, 1), 1);
  });
});

describe('CompressionPool', () => {
  it('is sized for its purpose unless told a number of threads', () => {
    assert.equal(new CompressionPool({ purpose: 'serve', threads: 5 }).threads, 5);
    const serving = new CompressionPool({ purpose: 'serve' });
    const packing = new CompressionPool();
    assert.equal(packing.purpose, 'pack');
    assert.ok(serving.threads < packing.threads || serving.threads === 1, `serve ${serving.threads}, pack ${packing.threads}`);
  });
});
