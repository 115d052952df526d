import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedMap, TtlCache } from './ttl-cache.ts';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ttl cache', () => {
  it('remembers a loaded value for its TTL, and concurrent misses share one load', async () => {
    let time = 0;
    const cache = new TtlCache<string>({ ttlMs: 1_000, maxEntries: 10, now: () => time });
    let loads = 0;
    const load = async () => `v${++loads}`;
    assert.deepEqual(await Promise.all([cache.get('k', load), cache.get('k', load)]), ['v1', 'v1']);
    time += 999;
    assert.equal(await cache.get('k', load), 'v1');
    time += 1;
    assert.equal(await cache.get('k', load), 'v2');
  });

  it("shows this process's own write at once, and a load that began before it never overwrites it", async () => {
    const cache = new TtlCache<string | null>({ ttlMs: 60_000, maxEntries: 10 });
    const old = deferred<string | null>();
    const before = cache.get('k', () => old.promise);
    cache.set('k', 'new');
    assert.equal(await cache.get('k', async () => 'from storage'), 'new');
    old.resolve(null);
    assert.equal(await before, null);
    assert.equal(await cache.get('k', async () => 'from storage'), 'new', 'the older read was not remembered');
  });

  it('after delete, reads storage again instead of joining a read that began earlier', async () => {
    const cache = new TtlCache<string | null>({ ttlMs: 60_000, maxEntries: 10 });
    assert.equal(await cache.get('k', async () => 'pushed'), 'pushed');
    const old = deferred<string | null>();
    cache.delete('k');
    const slow = cache.get('k', () => old.promise);
    cache.delete('k');
    let reads = 0;
    const next = cache.get('k', async () => (reads++, null));
    await new Promise((r) => setImmediate(r));
    assert.equal(reads, 1, 'a new read started');
    old.resolve('pushed');
    assert.equal(await next, null);
    await slow;
    assert.equal(await cache.get('k', async () => 'unexpected'), null);
  });

  it('does not remember values `keep` rejects, nor failed loads', async () => {
    const cache = new TtlCache<string | null>({ ttlMs: 60_000, maxEntries: 10, keep: (v) => v !== null });
    assert.equal(await cache.get('k', async () => null), null);
    await assert.rejects(cache.get('k', async () => Promise.reject(new Error('EIO'))), /EIO/);
    assert.equal(await cache.get('k', async () => 'v'), 'v');
    assert.equal(await cache.get('k', async () => 'w'), 'v');
  });

  it('holds at most maxEntries, evicting the least recently used', async () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.get('a');
    map.set('c', 3);
    assert.equal(map.size, 2);
    assert.equal(map.get('b'), undefined);
    assert.equal(map.get('a'), 1);
    const cache = new TtlCache<number>({ ttlMs: 60_000, maxEntries: 100 });
    for (let i = 0; i < 1_000; i++) await cache.get(`k${i}`, async () => i);
    assert.equal(cache.size, 100);
  });
});
