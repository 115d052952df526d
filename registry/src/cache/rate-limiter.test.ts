import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from './rate-limiter.ts';

describe('rate limiter', () => {
  it('allows `perMinute` at once per key, then refuses with the seconds until the next token', () => {
    let time = 0;
    const limiter = new RateLimiter({ perMinute: 3, now: () => time });
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('10.0.0.1'), { allowed: true });
    assert.deepEqual(limiter.take('10.0.0.1'), { allowed: false, retryAfterSeconds: 20 });
    assert.deepEqual(limiter.take('10.0.0.2'), { allowed: true }, 'another client has its own allowance');
    time += 5_000;
    assert.deepEqual(limiter.take('10.0.0.1'), { allowed: false, retryAfterSeconds: 15 }, 'a refusal spends nothing');
    time += 15_000;
    assert.deepEqual(limiter.take('10.0.0.1'), { allowed: true });
    assert.equal(limiter.take('10.0.0.1').allowed, false);
  });

  it('refills at perMinute a minute and never beyond a minute\'s allowance', () => {
    let time = 0;
    const limiter = new RateLimiter({ perMinute: 60, now: () => time });
    for (let i = 0; i < 60; i++) assert.equal(limiter.take('c').allowed, true);
    assert.equal(limiter.take('c').allowed, false);
    time += 10 * 60_000;
    let allowed = 0;
    while (limiter.take('c').allowed) allowed++;
    assert.equal(allowed, 60, 'ten idle minutes still give one minute\'s allowance');
  });

  it('holds at most maxKeys buckets, forgetting the least recently used', () => {
    let time = 0;
    const limiter = new RateLimiter({ perMinute: 1, maxKeys: 2, now: () => time });
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('b').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    assert.equal(limiter.take('c').allowed, true);
    // `b` was used least recently: forgotten, it starts with a full bucket again.
    assert.equal(limiter.take('b').allowed, true);
    assert.equal(limiter.take('c').allowed, false, 'recently used buckets are kept');
  });

  it('rejects a limit below one', () => {
    assert.throws(() => new RateLimiter({ perMinute: 0 }), RangeError);
  });
});
