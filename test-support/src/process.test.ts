import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { run, runOk } from './process.ts';

describe('running a program', () => {
  it('gives a program that exits without reading its input its exit status, not EPIPE', async () => {
    // More than a pipe holds, so the write is still going on when `true` has exited.
    const big = 'x'.repeat(4 << 20);
    assert.equal((await run('true', [], { input: big })).code, 0);
    assert.equal((await run('false', [], { input: big })).code, 1);
    await runOk('true', [], { input: big });
  });

  it('passes input to a program that reads it', async () => {
    assert.equal((await runOk('cat', [], { input: 'hello' })).stdout, 'hello');
  });

  it('names a program that is not installed', async () => {
    await assert.rejects(run('nixery-no-such-program', []), /not installed/);
  });
});
