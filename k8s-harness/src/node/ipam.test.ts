import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allocate, ipToInt, loopbackCidr, parseCidr, podRangeBeside } from './ipam.ts';

describe('loopback address allocation', () => {
  it('hands out the lowest free host address of the range', () => {
    const range = loopbackCidr('127.96.0.0/16');
    assert.equal(allocate(range, new Set()), '127.96.0.1');
    assert.equal(allocate(range, new Set(['127.96.0.1', '127.96.0.2'])), '127.96.0.3');
  });
  it('continues after the last address it gave, wrapping at the end', () => {
    const range = parseCidr('127.9.9.0/30');
    assert.equal(allocate(range, new Set(), '127.9.9.1'), '127.9.9.2');
    assert.equal(allocate(range, new Set(), '127.9.9.2'), '127.9.9.1');
    assert.equal(allocate(range, new Set(['127.9.9.1', '127.9.9.2'])), undefined);
  });
  it('refuses ranges outside 127.0.0.0/8', () => {
    assert.throws(() => loopbackCidr('10.96.0.0/16'), /outside 127.0.0.0\/8/);
  });
  it('puts pods in the other half of 127/8, one pod range per service range', () => {
    assert.deepEqual(podRangeBeside(parseCidr('127.96.0.0/16')), parseCidr('127.224.0.0/16'));
    assert.deepEqual(podRangeBeside(parseCidr('127.97.0.0/16')), parseCidr('127.225.0.0/16'));
    assert.deepEqual(podRangeBeside(parseCidr('127.200.5.0/24')), parseCidr('127.72.5.0/24'));
    assert.equal(ipToInt('127.0.0.1'), 2130706433);
  });
});
