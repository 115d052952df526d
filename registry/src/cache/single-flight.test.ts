import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, mapLimited, SingleFlight } from './single-flight.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('single flight', () => {
  it('runs the work once for concurrent callers of one key and shares the result', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const work = async () => {
      runs++;
      await tick();
      return 42;
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => flight.run('k', work)));
    assert.deepEqual(results, Array(10).fill(42));
    assert.equal(runs, 1);
    assert.equal(flight.size, 0);
  });

  it('shares failures too, and runs again after a failure', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const failing = async () => {
      runs++;
      await tick();
      throw new Error('boom');
    };
    const outcomes = await Promise.allSettled([flight.run('k', failing), flight.run('k', failing)]);
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
    await assert.rejects(flight.run('k', failing));
    assert.equal(runs, 2);
  });

  it('runs different keys independently', async () => {
    const flight = new SingleFlight<string>();
    assert.deepEqual(await Promise.all([flight.run('a', async () => 'a'), flight.run('b', async () => 'b')]), ['a', 'b']);
  });
});

describe('limiter', () => {
  it('never runs more than the limit at once and keeps output order', async () => {
    let active = 0;
    let peak = 0;
    const out = await mapLimited([5, 4, 3, 2, 1], 2, async (n) => {
      active++;
      peak = Math.max(peak, active);
      for (let i = 0; i < n; i++) await tick();
      active--;
      return n * 10;
    });
    assert.deepEqual(out, [50, 40, 30, 20, 10]);
    assert.equal(peak, 2);
  });

  it('rejects a limit below one', () => {
    assert.throws(() => new Limiter(0), RangeError);
  });

  it('releases its slot when a task fails', async () => {
    const limiter = new Limiter(1);
    await assert.rejects(limiter.run(async () => { throw new Error('x'); }));
    assert.equal(await limiter.run(async () => 'next'), 'next');
  });
});
