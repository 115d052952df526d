import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from './work-queue.ts';

describe('work queue', () => {
  it('holds a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
  });

  it('never hands a key to two workers; a re-add during processing runs once more after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a');
    q.add('a');
    assert.equal(q.length, 0, 'not handed out while being processed');
    q.done(key!);
    assert.equal(q.length, 1);
    assert.equal(await q.get(), 'a');
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.add('x');
    assert.equal(await waiting, 'x');
  });

  it('backs off exponentially per key and starts over after forget', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    assert.deepEqual([q.addRateLimited('k'), q.addRateLimited('k'), q.addRateLimited('k'), q.addRateLimited('k')], [10, 20, 40, 50]);
    q.forget('k');
    assert.equal(q.addRateLimited('k'), 10);
    q.shutdown();
  });

  it('adds delayed keys when their time comes', async () => {
    const q = new WorkQueue();
    q.addAfter('later', 20);
    assert.equal(q.length, 0);
    assert.equal(await q.get(), 'later');
  });

  it('keeps the sooner of two delays for one key, whichever came first', async () => {
    const q = new WorkQueue();
    q.addAfter('k', 60_000);
    q.addAfter('k', 20);
    const started = Date.now();
    assert.equal(await q.get(), 'k');
    assert.ok(Date.now() - started < 30_000, 'the short delay was not hidden by the long one');
    q.done('k');
    q.addAfter('j', 20);
    q.addAfter('j', 60_000);
    assert.equal(await q.get(), 'j', 'nor does a longer one push a short one back');
    q.shutdown();
  });

  it('releases waiting workers on shutdown', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutdown();
    assert.equal(await waiting, undefined);
    q.add('ignored');
    assert.equal(await q.get(), undefined);
  });
});
