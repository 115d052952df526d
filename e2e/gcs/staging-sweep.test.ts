// The GCS backend's sweep of stale staging objects while the registry runs, against the local
// emulator: objects older than the staging TTL (by their `updated` time) go, younger ones and the
// object of a write in progress stay, a listing is paged and a run is bounded, and only
// staging/ is touched.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../registry/src/log/logger.ts';
import { MAX_STAGING_SWEEP } from '../../registry/src/storage/backend.ts';
import { GcsStorage } from '../../registry/src/storage/gcs.ts';
import { startGcsEmulator } from './emulator.ts';

const emulator = await startGcsEmulator();
process.env.STORAGE_EMULATOR_HOST = emulator.url;
after(() => emulator.close());

const HOUR = 3600_000;
let buckets = 0;

async function backend(clock: { now: number }): Promise<GcsStorage> {
  const bucket = `nixery-sweep-${++buckets}`;
  emulator.createBucket(bucket);
  const storage = new GcsStorage({ bucket, log: silentLogger, stagingTtlMs: HOUR, now: () => clock.now, retry: { maxRetryDelaySeconds: 1 } });
  await storage.init();
  return storage;
}

/** A staging object as a writer leaves it, last written `ageMs` before `now`. */
function staged(bucket: string, name: string, bytes: number, now: number, ageMs: number): void {
  const object = emulator.putObject(bucket, `staging/${name}`, Buffer.alloc(bytes));
  object.updated = object.timeCreated = new Date(now - ageMs).toISOString();
}

describe('gcs storage: stale staging objects while running', () => {
  it('deletes those older than the TTL and keeps younger ones and everything outside staging/', async () => {
    const clock = { now: Date.now() };
    const storage = await backend(clock);
    const { digest } = await storage.putBlob(Buffer.from('kept'), { contentType: 'x/y' });
    await storage.putDocument('cache/k', { v: 1 });
    staged(storage.bucketName, 'crashed-writer', 11, clock.now, HOUR + 60_000);
    staged(storage.bucketName, 'other-replica', 5, clock.now, HOUR - 60_000);

    assert.deepEqual(await storage.sweepStaging(), { objects: 1, bytes: 11 });
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), ['staging/other-replica']);

    clock.now += 2 * 60_000;
    assert.deepEqual(await storage.sweepStaging(), { objects: 1, bytes: 5 });
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), []);
    assert.equal((await storage.readBlob(digest)).toString(), 'kept');
    assert.deepEqual(await storage.getDocument('cache/k'), { v: 1 });
  });

  it('pages through the listing and stops at the per-run cap, leaving the rest for the next run', async () => {
    const clock = { now: Date.now() };
    const storage = await backend(clock);
    const total = MAX_STAGING_SWEEP + 5;
    for (let i = 0; i < total; i++) staged(storage.bucketName, `old-${String(i).padStart(6, '0')}`, 1, clock.now, 2 * HOUR);
    const listsBefore = emulator.requests.filter((r) => r.bucket === storage.bucketName && r.operation === 'objects.list').length;

    assert.deepEqual(await storage.sweepStaging(), { objects: MAX_STAGING_SWEEP, bytes: MAX_STAGING_SWEEP });
    const lists = emulator.requests.filter((r) => r.bucket === storage.bucketName && r.operation === 'objects.list').length - listsBefore;
    assert.equal(lists, MAX_STAGING_SWEEP / 1000, 'pages of 1000, no more than the cap needs');
    assert.equal(emulator.objectNames(storage.bucketName, 'staging/').length, 5);
    assert.deepEqual(await storage.sweepStaging(), { objects: 5, bytes: 5 });
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), []);
  });

  it('never deletes the staging object of a write this process has in progress, however old', async () => {
    const clock = { now: Date.now() };
    const storage = await backend(clock);
    // The copy to the digest is refused once (503): the library backs off a second before it
    // retries, and all that time the complete staging object is this process's write.
    let copyTried!: () => void;
    const copying = new Promise<void>((resolve) => (copyTried = resolve));
    emulator.inject({
      operation: 'objects.rewrite',
      when: (request) => {
        if (request.bucket !== storage.bucketName) return false;
        copyTried();
        return true;
      },
      action: { type: 'status', status: 503 },
    });
    let finished = false;
    const writing = storage.putBlob(Buffer.from('a blob on its way'), { contentType: 'x/y' }).finally(() => (finished = true));
    await copying;
    const [name] = emulator.objectNames(storage.bucketName, 'staging/');
    assert.ok(name, 'the staging object exists while the copy is retried');
    emulator.object(storage.bucketName, name)!.updated = new Date(clock.now - 10 * HOUR).toISOString();

    assert.deepEqual(await storage.sweepStaging(), { objects: 0, bytes: 0 });
    assert.equal(finished, false, 'the sweep ran while the write was in progress');
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), [name]);
    const { digest } = await writing;
    assert.equal((await storage.readBlob(digest)).toString(), 'a blob on its way');
    assert.deepEqual(emulator.objectNames(storage.bucketName, 'staging/'), [], 'the write removed its own staging object');
  });
});
