import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from './errors.ts';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';

describe('selectors', () => {
  it('matches label selectors with every operator', () => {
    const labels = { app: 'web', tier: 'front' };
    const yes = ['app=web', 'app==web', 'app!=db', 'tier in (front, back)', 'tier notin (back)', 'app', '!missing', 'app=web,tier=front', ''];
    const no = ['app=db', 'tier in (back)', 'tier notin (front)', 'missing', '!app', 'app=web,tier=back'];
    for (const s of yes) assert.equal(matchesLabels(parseLabelSelector(s), labels), true, s);
    for (const s of no) assert.equal(matchesLabels(parseLabelSelector(s), labels), false, s);
  });

  it('rejects malformed label selectors with 400', () => {
    assert.throws(() => parseLabelSelector('app in (a'), (e: unknown) => e instanceof ApiError && e.code === 400);
    assert.throws(() => parseLabelSelector('-bad=x'), (e: unknown) => e instanceof ApiError && e.code === 400);
  });

  it('matches field selectors', () => {
    const fields = { 'metadata.name': 'a', 'status.phase': 'Running' };
    assert.equal(matchesFields(parseFieldSelector('metadata.name=a,status.phase!=Pending'), fields), true);
    assert.equal(matchesFields(parseFieldSelector('status.phase==Pending'), fields), false);
  });
});
