import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NonUtf8NameError,
  PackError,
  StoreFileChangedError,
  StoreReadError,
  UnsupportedFileTypeError,
  packErrorData,
  packErrorFrom,
} from './errors.ts';

/** What the event loop gets for an error thrown on the tar thread. */
const crossThreads = (err: unknown) => packErrorFrom(structuredClone(packErrorData(err)));

describe('pack errors across threads', () => {
  it('keep their class, path and details', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/s/x'"), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/s/x' });
    const read = crossThreads(new StoreReadError('/s/x', enoent));
    assert.ok(read instanceof StoreReadError);
    assert.equal(read.fsPath, '/s/x');
    assert.equal(read.message, "reading /s/x: ENOENT: no such file or directory, open '/s/x'");
    assert.equal((read.cause as NodeJS.ErrnoException).code, 'ENOENT');

    const changed = crossThreads(new StoreFileChangedError('/s/y', 100, 40));
    assert.ok(changed instanceof StoreFileChangedError);
    assert.deepEqual([changed.fsPath, changed.expectedSize, changed.actualSize], ['/s/y', 100, 40]);

    const fifo = crossThreads(new UnsupportedFileTypeError('/s/fifo'));
    assert.ok(fifo instanceof UnsupportedFileTypeError);
    assert.equal(fifo.fsPath, '/s/fifo');

    const name = crossThreads(new NonUtf8NameError('/s/\ufffd'));
    assert.ok(name instanceof NonUtf8NameError);
    assert.equal(name.message, new NonUtf8NameError('/s/\ufffd').message);
  });

  it('turn anything else into a PackError that names the original', () => {
    const other = crossThreads(new TypeError('x is not a function'));
    assert.ok(other instanceof PackError);
    assert.equal(other.message, 'TypeError: x is not a function');
    assert.equal(crossThreads('thrown string').message, 'PackError: thrown string');
  });
});
