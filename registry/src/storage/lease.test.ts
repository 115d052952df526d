// storage/lease.ts beyond the contract suite (test-support.ts runs that against every backend):
// what a holder does when its storage stops answering.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { within } from '@nixery/test-support';
import { silentLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { FilesystemStorage } from './filesystem.ts';
import { isHeld, LeaseLostError, Leases } from './lease.ts';

const tempDir = tempDirs('nixery-lease-');

describe('a held lease', () => {
  it('counts as lost at its expiry when renewals hang, so another replica taking it over never overlaps it', async () => {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    let hang = false;
    const stuck = {
      readLease: (name: string) => storage.readLease(name),
      swapLease: (...args: Parameters<FilesystemStorage['swapLease']>) => (hang ? new Promise<string | null>(() => {}) : storage.swapLease(...args)),
    };
    const lease = await new Leases({ storage: stuck, holder: 'a', durationMs: 300, log: silentLogger }).tryAcquire('gc');
    assert.ok(isHeld(lease));
    hang = true;
    await within(5_000, 'the lease to count as lost', once(lease.signal, 'abort'));
    assert.ok(lease.signal.reason instanceof LeaseLostError);
    assert.match(lease.signal.reason.message, /not renewed before it expired/);
    const taker = await new Leases({ storage, holder: 'b', durationMs: 300, log: silentLogger }).tryAcquire('gc');
    assert.ok(isHeld(taker), 'expired: another replica takes it over');
    await taker.release();
  });
});
