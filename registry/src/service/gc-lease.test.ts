import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { isHeld, LeaseLostError, Leases } from '../storage/lease.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { GarbageCollector, PeriodicGc, type GcReport } from './gc.ts';
import { acquireGcLease, GC_LEASE, GcLeaseBusyError } from './gc-lease.ts';

const tempDir = tempDirs('nixery-gc-lease-');

const emptyReport: GcReport = {
  dryRun: false,
  result: 'ok',
  deleted: { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } },
  expired: { retention: 0, per_name: 0 },
  withinGrace: { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } },
  kept: { blobs: { objects: 0, bytes: 0 }, documents: { objects: 0, bytes: 0 } },
  unreadable: [],
  graceSeconds: 3600,
  durationSeconds: 0,
};

async function replicas() {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const metrics = createMetrics({ defaultMetrics: false });
  const replica = (holder: string) =>
    new Leases({ storage, holder, durationMs: 60_000, log: silentLogger, onEvent: (event, name) => metrics.leaseEvents.inc({ lease: name, event }) });
  return { storage, metrics, replica };
}

describe('garbage collection on one replica at a time', () => {
  it('a periodic run holds the GC lease while it collects and releases it after', async () => {
    const { storage, metrics, replica } = await replicas();
    const holders: (string | null | undefined)[] = [];
    const periodic = new PeriodicGc({
      collector: {
        collect: async () => {
          holders.push((await storage.readLease(GC_LEASE))?.record?.holder);
          return emptyReport;
        },
      },
      metrics,
      log: silentLogger,
      intervalMs: 60_000,
      leases: replica('a'),
    });
    assert.equal(await periodic.run(), emptyReport);
    assert.deepEqual(holders, ['a']);
    assert.equal((await storage.readLease(GC_LEASE))?.record, null);
    assert.match(await metrics.registry.metrics(), /nixery_lease_events_total\{lease="gc",event="acquired"\} 1/);
  });

  it('a periodic run skips its turn while another replica holds the lease, without collecting', async () => {
    const { metrics, replica } = await replicas();
    const other = await replica('b').tryAcquire(GC_LEASE);
    assert.ok(isHeld(other));
    let collected = 0;
    const periodic = new PeriodicGc({
      collector: { collect: async () => (collected++, emptyReport) },
      metrics,
      log: silentLogger,
      intervalMs: 60_000,
      leases: replica('a'),
    });
    assert.equal(await periodic.run(), undefined);
    assert.equal(collected, 0);
    const text = await metrics.registry.metrics();
    assert.match(text, /nixery_lease_events_total\{lease="gc",event="busy"\} 1/);
    assert.doesNotMatch(text, /nixery_gc_runs_total\{/, 'a skipped turn is no run');
    await other.release();
    assert.equal(await periodic.run(), emptyReport);
    assert.equal(collected, 1);
  });

  it('nixery gc waits a bounded time for the lease, then says who holds it', async () => {
    const { replica } = await replicas();
    const other = await replica('replica-b').tryAcquire(GC_LEASE);
    assert.ok(isHeld(other));
    await assert.rejects(acquireGcLease(replica('cli'), { waitMs: 50, pollMs: 10 }), (error: unknown) => {
      assert.ok(error instanceof GcLeaseBusyError);
      assert.equal(error.holder, 'replica-b');
      assert.match(error.message, /another replica \(replica-b\) is collecting garbage on this storage .* try again later/);
      return true;
    });
    // Released while it waits: it gets the lease.
    setTimeout(() => void other.release(), 30);
    const lease = await acquireGcLease(replica('cli'), { waitMs: 10_000, pollMs: 10 });
    assert.equal(lease.holder, 'cli');
    await lease.release();
  });

  it('a run whose lease was lost to another replica deletes nothing more', async () => {
    const { storage } = await replicas();
    const { digest } = await storage.putBlob(Buffer.from('garbage'), { contentType: 'x/y' });
    const collector = new GarbageCollector({ storage, graceMs: 0, log: silentLogger });
    await collector.collect(); // first seen unreferenced
    const lost = new AbortController();
    lost.abort(new LeaseLostError(GC_LEASE, 'another replica took it over'));
    await assert.rejects(collector.collect({ signal: lost.signal }), LeaseLostError);
    assert.ok(await storage.statBlob(digest), 'kept');
    await collector.collect();
    assert.equal(await storage.statBlob(digest), null, 'the next run with the lease deletes it');
  });
});
