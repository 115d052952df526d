// Garbage collection (registry/src/service/gc.ts) on the GCS backend, against the local emulator:
// the storage contract's listings (paged prefix listings), and a tagged image kept while an old
// unreferenced blob goes on the run a grace delay after the one that first saw it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { silentLogger } from '../../registry/src/log/logger.ts';
import { GarbageCollector } from '../../registry/src/service/gc.ts';
import { GcsStorage } from '../../registry/src/storage/gcs.ts';
import { startGcsEmulator } from './emulator.ts';

const emulator = await startGcsEmulator();
process.env.STORAGE_EMULATOR_HOST = emulator.url;
after(() => emulator.close());

const HOUR = 3600_000;

function digestOf(content: Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

describe('gcs storage: garbage collection', () => {
  it('keeps a tagged image and deletes an old unreferenced blob a grace delay after first seeing it', async () => {
    const bucket = 'nixery-gc';
    emulator.createBucket(bucket);
    const clock = { now: Date.now() };
    const storage = new GcsStorage({ bucket, log: silentLogger, retry: { maxRetryDelaySeconds: 1 } });
    await storage.init();
    /** A blob as if stored two hours ago. */
    const old = (content: string, contentType: string) => {
      const bytes = Buffer.from(content);
      const digest = digestOf(bytes);
      const object = emulator.putObject(bucket, `blobs/sha256/${digest.slice(7)}`, bytes, contentType);
      object.updated = object.timeCreated = new Date(clock.now - 2 * HOUR).toISOString();
      return { digest, size: bytes.length, mediaType: contentType };
    };
    const config = old('{"os":"linux"}', 'application/vnd.oci.image.config.v1+json');
    const layer = old('layer', 'application/vnd.oci.image.layer.v1.tar+gzip');
    const manifest = old(JSON.stringify({ schemaVersion: 2, config, layers: [layer] }), 'application/vnd.oci.image.manifest.v1+json');
    const garbage = old('garbage', 'application/octet-stream');
    await storage.putDocument('pushed/team/app/_tags/v1', manifest);

    const listed = [];
    for await (const blob of storage.listBlobs()) listed.push(blob.digest);
    assert.deepEqual(listed.sort(), [config.digest, layer.digest, manifest.digest, garbage.digest].sort());

    const gc = new GarbageCollector({ storage, graceMs: HOUR, log: silentLogger, now: () => clock.now });
    const first = await gc.collect();
    assert.equal(first.result, 'ok');
    assert.equal(first.deleted.blob.objects, 0);
    assert.equal(first.withinGrace.blob.objects, 1);
    clock.now += HOUR;
    const dry = await gc.collect({ dryRun: true });
    assert.equal(dry.deleted.blob.objects, 1);
    assert.notEqual(await storage.statBlob(garbage.digest), null, 'a dry run deletes nothing');
    const second = await gc.collect();
    assert.deepEqual(second.deleted.blob, { objects: 1, bytes: 7 });
    assert.equal(await storage.statBlob(garbage.digest), null);
    for (const d of [config, layer, manifest]) assert.notEqual(await storage.statBlob(d.digest), null, d.digest);
    assert.ok(emulator.objectNames(bucket, 'documents/').includes('documents/gc/state.json'));
  });
});
