// The pool's buffers come from slabs, each a mapping of its own, and a slab whose buffers are all
// back goes once enough others are idle: a burst of use leaves nothing behind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from './buffer-pool.ts';

const MiB = 1024 * 1024;

describe('buffer pool', () => {
  it('hands out distinct buffers of its chunk size, cut from slabs larger than 32 MiB', () => {
    const pool = new BufferPool(MiB, 16);
    const buffers = Array.from({ length: 40 }, () => pool.take());
    assert.ok(buffers.every((b) => b.length === MiB));
    const slabs = new Set(buffers.map((b) => b.buffer));
    assert.equal(slabs.size, 2, '40 buffers of 1 MiB need two slabs of 33');
    for (const slab of slabs) assert.ok(slab.byteLength > 32 * MiB, `a slab of ${slab.byteLength} bytes: glibc maps it on its own`);
    const ranges = buffers.map((b) => [b.buffer, b.byteOffset] as const);
    assert.equal(new Set(ranges.map(([s, o]) => `${[...slabs].indexOf(s)}:${o}`)).size, 40, 'no two buffers overlap');
  });

  it('lets go of a slab once all its buffers are back and enough others are idle, and keeps one', () => {
    const pool = new BufferPool(MiB, 16);
    const buffers = Array.from({ length: 100 }, () => pool.take());
    assert.equal(pool.slabCount, 4);
    for (const buffer of buffers) pool.give(buffer);
    assert.equal(pool.slabCount, 1, 'one idle slab stays for the next bodies');
    assert.equal(pool.idle, 33);
    const freed = [...new Set(buffers.map((b) => b.buffer))].filter((slab) => slab.byteLength === 0);
    assert.equal(freed.length, 3, 'the other slabs are freed at once, not left for a garbage collection');
  });

  it('fills the busiest slab first, so that the others can empty', () => {
    const pool = new BufferPool(MiB, 16);
    const first = Array.from({ length: 33 }, () => pool.take());
    const second = Array.from({ length: 10 }, () => pool.take());
    // Some of the first slab comes back: the next buffers still come from it, not from the second.
    for (const buffer of first.slice(0, 8)) pool.give(buffer);
    const next = pool.take();
    assert.equal(next.buffer, first[0]!.buffer);
    pool.give(next);
    for (const buffer of second) pool.give(buffer);
    assert.equal(pool.slabCount, 2, 'the emptied second slab stays while fewer than 16 others are idle');
    for (const buffer of first.slice(8)) pool.give(buffer);
    assert.equal(pool.slabCount, 1, 'then the first goes');
    assert.equal(pool.take().buffer, second[0]!.buffer);
  });

  it('ignores buffers that are not its own', () => {
    const pool = new BufferPool(MiB, 16);
    pool.give(Buffer.alloc(MiB));
    assert.equal(pool.slabCount, 0);
    assert.equal(pool.idle, 0);
  });
});
