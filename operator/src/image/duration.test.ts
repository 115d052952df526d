import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from './duration.ts';

describe('rebuild intervals', () => {
  it('parse s, m, h and their combinations', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('24h'), 86_400_000);
  });
  it('reject anything else', () => {
    for (const bad of ['', '1d', '10', 'h', '1h 30m', '-1h']) assert.throws(() => parseDuration(bad), /invalid duration/, bad);
  });
});
