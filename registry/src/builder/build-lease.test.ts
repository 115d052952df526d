import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../log/logger.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { isHeld, Leases } from '../storage/lease.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { buildTurn } from './build-lease.ts';

const tempDir = tempDirs('nixery-build-lease-');

/** Replicas on one storage, each with its own holder name; the image is a document the holder writes. */
async function replicas(durationMs = 60_000) {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const replica = (holder: string) => new Leases({ storage, holder, durationMs, log: silentLogger });
  const waits: string[] = [];
  const turn = (leases: Leases, maxWaitMs = 60_000) =>
    buildTurn({
      leases,
      name: 'build/image',
      cached: () => storage.getDocument<{ built: string }>('manifests/image'),
      pollMs: 10,
      maxWaitMs,
      log: silentLogger,
      onWait: (result) => waits.push(result),
    });
  return { storage, replica, turn, waits };
}

describe('build lease: one build per image across replicas', () => {
  it('the first replica builds; a second waits and is served what the first stored', async () => {
    const { storage, replica, turn, waits } = await replicas();
    const first = await turn(replica('a'));
    assert.ok('lease' in first && first.lease);
    const second = turn(replica('b'));
    await new Promise((r) => setTimeout(r, 50));
    await storage.putDocument('manifests/image', { built: 'by a' });
    await first.lease.release();
    assert.deepEqual(await second, { result: { built: 'by a' } });
    assert.deepEqual(waits, ['served']);
  });

  it('a waiter builds itself once the holder released the lease without the image (its build failed)', async () => {
    const { replica, turn, waits } = await replicas();
    const first = await turn(replica('a'));
    assert.ok('lease' in first && first.lease);
    const second = turn(replica('b'));
    await new Promise((r) => setTimeout(r, 50));
    await first.lease.release();
    const taken = await second;
    assert.ok('lease' in taken && taken.lease && isHeld(taken.lease));
    assert.equal(taken.lease.holder, 'b');
    assert.deepEqual(waits, ['built_here']);
    await taken.lease.release();
  });

  it('a waiter takes over the lease of a holder that died (stopped renewing) once it expires', async () => {
    const { storage, replica, turn } = await replicas(300);
    // A dead holder: its record, and nobody renewing it.
    await storage.swapLease('build/image', null, { holder: 'dead', expiresMs: Date.now() + 300 });
    const taken = await turn(replica('b'));
    assert.ok('lease' in taken && taken.lease);
    assert.equal((await storage.readLease('build/image'))?.record?.holder, 'b');
    await taken.lease.release();
  });

  it('of many replicas asking at once, one gets the lease and the others the image it stored', async () => {
    const { storage, replica, turn } = await replicas();
    const turns = Array.from({ length: 8 }, (_, i) => turn(replica(`r${i}`)));
    // The holder "builds" once it has the lease; the others are waiting meanwhile.
    const holder = await Promise.any(turns.map((t) => t.then((x) => ('lease' in x && x.lease ? x.lease : Promise.reject(new Error('no lease'))))));
    await storage.putDocument('manifests/image', { built: holder.holder });
    await holder.release();
    const outcomes = await Promise.all(turns);
    assert.equal(outcomes.filter((o) => 'lease' in o).length, 1);
    for (const o of outcomes) if ('result' in o) assert.deepEqual(o.result, { built: holder.holder });
  });

  it('gives up waiting after maxWaitMs and builds without the lease rather than fail', async () => {
    const { replica, turn, waits } = await replicas();
    const first = await turn(replica('a'));
    assert.ok('lease' in first && first.lease);
    assert.deepEqual(await turn(replica('b'), 50), { lease: undefined });
    assert.deepEqual(waits, ['built_here']);
    await first.lease.release();
  });

  it('stops waiting for another replica once its signal aborts (every client left)', async () => {
    const { storage, replica } = await replicas();
    const first = await buildTurn({ leases: replica('a'), name: 'build/image', cached: () => storage.getDocument('manifests/image'), pollMs: 10, maxWaitMs: 60_000, log: silentLogger });
    assert.ok('lease' in first && first.lease);
    const left = new AbortController();
    const waiting = buildTurn({ leases: replica('b'), name: 'build/image', cached: () => storage.getDocument('manifests/image'), pollMs: 10, maxWaitMs: 60_000, log: silentLogger, signal: left.signal });
    setTimeout(() => left.abort(new Error('the clients left')), 30);
    await assert.rejects(waiting, /the clients left/);
    assert.equal((await storage.readLease('build/image'))?.record?.holder, 'a', 'the holder keeps its lease');
    await first.lease.release();
  });
});

