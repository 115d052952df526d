import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveRange } from './byte-range.ts';

const whole = { kind: 'whole' };
const unsatisfiable = { kind: 'unsatisfiable' };
const partial = (start: number, end: number) => ({ kind: 'partial', start, end });

describe('Range headers (RFC 9110 §14) for a 100-byte blob', () => {
  const cases: [header: string | undefined, expected: object][] = [
    [undefined, whole],
    ['bytes=0-0', partial(0, 0)],
    ['bytes=0-99', partial(0, 99)],
    ['bytes=0-', partial(0, 99)],
    ['bytes=99-', partial(99, 99)],
    ['bytes=10-1000', partial(10, 99)],
    ['bytes=-1', partial(99, 99)],
    ['bytes=-100', partial(0, 99)],
    ['bytes=-1000', partial(0, 99)], // §14.1.2: longer than the blob means all of it
    ['BYTES = 5-9', whole], // no whitespace around "=" in the grammar: malformed, ignored
    ['Bytes=5-9', partial(5, 9)], // range units are case-insensitive
    [' bytes=5-9 ', partial(5, 9)],
    ['bytes=5-9, ', partial(5, 9)], // empty list elements are ignored
    ['bytes=007-008', partial(7, 8)],
    ['bytes=100-', unsatisfiable],
    ['bytes=100-200', unsatisfiable],
    ['bytes=-0', unsatisfiable],
    ['bytes=100-,200-300', unsatisfiable],
    ['bytes=99999999999999999999999-', unsatisfiable],
    ['bytes=0-1,2-3', partial(0, 3)], // adjacent: coalesced
    ['bytes=0-10,5-20', partial(0, 20)], // overlapping: coalesced
    ['bytes=0-1,200-', partial(0, 1)], // the unsatisfiable one is dropped
    ['bytes=0-1,5-6', whole], // disjoint: no multipart, the whole blob
    ['bytes=9-5', whole], // invalid: last before first
    ['bytes=abc', whole],
    ['bytes=1-2-3', whole],
    ['bytes=', whole],
    ['bytes=,', whole],
    ['bytes=+1-2', whole],
    ['bytes', whole],
    ['pages=1-2', whole], // §14.2: an unknown unit MUST be ignored
    ['pages=1000-', whole],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(resolveRange(header, 100), expected);
    });
  }

  it('finds nothing to satisfy in an empty blob', () => {
    assert.deepEqual(resolveRange('bytes=0-', 0), unsatisfiable);
    assert.deepEqual(resolveRange('bytes=-5', 0), unsatisfiable);
    assert.deepEqual(resolveRange('bytes=0-0', 0), unsatisfiable);
  });
});
