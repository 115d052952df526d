import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RevalidatingCache } from './revalidating-cache.ts';

/** A lookup the test answers by hand, counting how often it was started. */
function manualLookup() {
  const pending: { resolve: (v: string) => void; reject: (e: Error) => void }[] = [];
  return {
    started: () => pending.length,
    lookup: () => new Promise<string>((resolve, reject) => pending.push({ resolve, reject })),
    resolve: (i: number, v: string) => pending[i]!.resolve(v),
    reject: (i: number, e: Error) => pending[i]!.reject(e),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

function setup() {
  let time = 0;
  const cache = new RevalidatingCache<string>({ freshMs: 1_000, maxStaleMs: 5_000, maxEntries: 4, now: () => time });
  return { cache, advance: (ms: number) => (time += ms) };
}

describe('revalidating cache', () => {
  it('waits for the first lookup, then answers from memory while the answer is fresh', async () => {
    const { cache, advance } = setup();
    const l = manualLookup();
    const first = cache.get('k', l.lookup);
    await tick();
    assert.equal(l.started(), 1);
    l.resolve(0, 'v1');
    assert.equal(await first, 'v1');
    advance(999);
    assert.equal(await cache.get('k', l.lookup), 'v1');
    assert.equal(l.started(), 1);
  });

  it('once stale: the first caller waits for the new answer, callers during that refresh get the previous one, one lookup runs', async () => {
    const { cache, advance } = setup();
    const l = manualLookup();
    const first = cache.get('k', l.lookup);
    await tick();
    l.resolve(0, 'v1');
    await first;
    advance(1_000);

    let waiterDone = false;
    const waiter = cache.get('k', l.lookup).then((v) => ((waiterDone = true), v));
    await tick();
    assert.equal(l.started(), 2);
    // Stale-while-revalidate: a burst during the refresh is not held up by it.
    assert.equal(await cache.get('k', l.lookup), 'v1');
    assert.equal(await cache.get('k', l.lookup), 'v1');
    assert.equal(l.started(), 2, 'at most one refresh in flight');
    assert.equal(waiterDone, false);
    l.resolve(1, 'v2');
    assert.equal(await waiter, 'v2', 'the caller that found it stale sees the change');
    assert.equal(await cache.get('k', l.lookup), 'v2');
  });

  it('makes a caller wait for the running refresh once the previous answer is older than maxStale', async () => {
    const { cache, advance } = setup();
    const l = manualLookup();
    const first = cache.get('k', l.lookup);
    await tick();
    l.resolve(0, 'v1');
    await first;
    advance(4_000);
    const refresh = cache.get('k', l.lookup);
    await tick();
    advance(1_000); // the answer is now 5 s old, and the refresh still runs
    let late: string | undefined;
    const lateCaller = cache.get('k', l.lookup).then((v) => (late = v));
    await tick();
    assert.equal(late, undefined, 'not answered from a lookup older than maxStale');
    assert.equal(l.started(), 2, 'joined the running refresh instead of starting another');
    l.resolve(1, 'v2');
    await Promise.all([refresh, lateCaller]);
    assert.equal(late, 'v2');
  });

  it('reports a failed refresh to whoever waited for it, keeps serving the previous answer during a refresh, and retries next time', async () => {
    const { cache, advance } = setup();
    const l = manualLookup();
    const first = cache.get('k', l.lookup);
    await tick();
    l.resolve(0, 'v1');
    await first;
    advance(1_500);
    const failing = cache.get('k', l.lookup);
    await tick();
    assert.equal(await cache.get('k', l.lookup), 'v1');
    l.reject(1, new Error('git ls-remote failed'));
    await assert.rejects(failing, /git ls-remote failed/);

    // Not remembered: the next caller starts a new attempt (and a caller during it still gets v1).
    const retry = cache.get('k', l.lookup);
    await tick();
    assert.equal(l.started(), 3);
    assert.equal(await cache.get('k', l.lookup), 'v1');
    l.resolve(2, 'v2');
    assert.equal(await retry, 'v2');
  });

  it('does not wedge on a lookup that throws synchronously', async () => {
    const { cache } = setup();
    await assert.rejects(
      cache.get('k', () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await cache.get('k', async () => 'ok'), 'ok');
  });

  it('keeps answers for different keys apart, and at most maxEntries of them', async () => {
    const { cache } = setup();
    let lookups = 0;
    for (const k of ['a', 'b', 'c', 'd', 'e']) assert.equal(await cache.get(k, async () => (lookups++, k)), k);
    assert.equal(lookups, 5);
    assert.equal(await cache.get('e', async () => (lookups++, 'x')), 'e');
    assert.equal(await cache.get('a', async () => (lookups++, 'a again')), 'a again', 'the least recently used key was evicted');
    assert.equal(lookups, 6);
  });
});
