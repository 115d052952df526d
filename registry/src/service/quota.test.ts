// The storage quota (service/quota.ts), specification style: which on-demand images eviction
// picks and when it stops, the would-not-fit rule, the estimate between passes, the write meter,
// and a garbage collection pass that evicts on the filesystem backend (least recently used first,
// pushed tags never, blobs a grace delay later).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../log/logger.ts';
import { MediaType } from '../oci/media-types.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { classifyFailure } from '../builder/outcome.ts';
import { GarbageCollector } from './gc.ts';
import { chooseEvictions, meterWrites, StorageQuotaExceededError, StorageUsage, wouldNotFit, type EvictionInput } from './quota.ts';

const tempDir = tempDirs('nixery-quota-');
const HOUR = 3600_000;
const GRACE = HOUR;

describe('eviction order (chooseEvictions)', () => {
  const sizes = new Map([
    ['sha256:a', 100],
    ['sha256:b', 100],
    ['sha256:c', 100],
    ['sha256:shared', 50],
    ['sha256:pushed', 70],
  ]);
  const input = (over: Partial<EvictionInput>): EvictionInput => ({
    candidates: [
      { key: 'manifests/c', lastUsed: 3, digests: ['sha256:c', 'sha256:shared'] },
      { key: 'manifests/a', lastUsed: 1, digests: ['sha256:a', 'sha256:shared'] },
      { key: 'manifests/b', lastUsed: 2, digests: ['sha256:b', 'sha256:pushed'] },
    ],
    blobSizes: sizes,
    held: new Set(['sha256:pushed']),
    inUseBytes: 420,
    leavingBytes: 0,
    quotaBytes: 1000,
    ...over,
  });

  it('evicts nothing at or under the quota', () => {
    assert.deepEqual(chooseEvictions(input({ quotaBytes: 420 })), { evicted: [], freedBytes: 0 });
  });

  it('evicts the least recently used first, only until in use is at most the quota', () => {
    assert.deepEqual(chooseEvictions(input({ quotaBytes: 330 })), { evicted: ['manifests/a'], freedBytes: 100 });
    assert.deepEqual(chooseEvictions(input({ quotaBytes: 250 })), { evicted: ['manifests/a', 'manifests/b'], freedBytes: 200 });
  });

  it('counts a shared blob freed only when its last user goes, and a held blob never', () => {
    const all = chooseEvictions(input({ quotaBytes: 0 }));
    assert.deepEqual(all.evicted, ['manifests/a', 'manifests/b', 'manifests/c']);
    assert.equal(all.freedBytes, 100 + 100 + 100 + 50, 'the pushed blob is not freed; the shared one once');
  });

  it('counts what is already leaving: no eviction when that brings in use under the quota', () => {
    assert.deepEqual(chooseEvictions(input({ quotaBytes: 400, leavingBytes: 20 })), { evicted: [], freedBytes: 0 });
    assert.deepEqual(chooseEvictions(input({ quotaBytes: 400, leavingBytes: 19 })).evicted, ['manifests/a']);
  });

  it('orders images used at the same time by key, so runs agree', () => {
    const tied = chooseEvictions(input({ quotaBytes: 330, candidates: [{ key: 'manifests/z', lastUsed: 1, digests: ['sha256:c'] }, { key: 'manifests/y', lastUsed: 1, digests: ['sha256:b'] }] }));
    assert.deepEqual(tied.evicted, ['manifests/y']);
  });
});

describe('would not fit', () => {
  it('refuses only an image that could not fit even if every on-demand image went', () => {
    assert.equal(wouldNotFit({ pinnedBytes: 600, imageBytes: 400, quotaBytes: 1000 }), false);
    assert.equal(wouldNotFit({ pinnedBytes: 600, imageBytes: 401, quotaBytes: 1000 }), true);
  });

  it('is a 503-class storage failure that says why, with the numbers', () => {
    const usage = new StorageUsage({ quotaBytes: 10 * 1024 * 1024, retryAfterSeconds: 3600 });
    usage.checkFits(1e12); // nothing measured yet: no refusal on a guess
    usage.record({ inUseBytes: 9 * 1024 * 1024, pinnedBytes: 8 * 1024 * 1024, leavingBytes: 0 });
    usage.checkFits(2 * 1024 * 1024);
    assert.throws(
      () => usage.checkFits(2 * 1024 * 1024 + 1),
      (error: unknown) => {
        assert.ok(error instanceof StorageQuotaExceededError);
        assert.match(error.message, /^the image does not fit in this registry's storage quota: its closure is 2\.0 MiB, and pushed images and other data that cannot be evicted already use 8\.0 MiB of the 10 MiB quota; images already built are still served$/);
        assert.deepEqual(classifyFailure(error), {
          kind: 'storage_quota_exceeded',
          outcome: 'storage_failure',
          message: error.message,
          imageBytes: 2 * 1024 * 1024 + 1,
          pinnedBytes: 8 * 1024 * 1024,
          quotaBytes: 10 * 1024 * 1024,
          retryAfterSeconds: 3600,
        });
        return true;
      },
    );
  });
});

describe('the estimate between passes (StorageUsage)', () => {
  it('is the last measure minus what is leaving plus this process writes since, and reset by the next measure', () => {
    const usage = new StorageUsage({ quotaBytes: 1000 });
    assert.equal(usage.estimateBytes, undefined);
    usage.noteWrite(500);
    assert.equal(usage.estimateBytes, undefined, 'writes before the first measure are in it');
    usage.record({ inUseBytes: 700, pinnedBytes: 100, leavingBytes: 200 });
    assert.equal(usage.estimateBytes, 500);
    usage.noteWrite(50);
    assert.equal(usage.estimateBytes, 550);
    usage.record({ inUseBytes: 600, pinnedBytes: 100, leavingBytes: 0 });
    assert.equal(usage.estimateBytes, 600);
  });

  it('asks for a pass when a write takes it over the quota, at most once per interval', () => {
    const clock = { now: 0 };
    let asked = 0;
    const usage = new StorageUsage({ quotaBytes: 1000, minTriggerIntervalMs: 60_000, now: () => clock.now, onOver: () => asked++ });
    usage.noteWrite(5000);
    assert.equal(asked, 0, 'not measured yet: the first pass is already coming');
    usage.record({ inUseBytes: 900, pinnedBytes: 0, leavingBytes: 0 });
    usage.noteWrite(100);
    assert.equal(asked, 0, 'at the quota is not over it');
    usage.noteWrite(1);
    usage.noteWrite(1);
    assert.equal(asked, 1);
    clock.now += 60_000;
    usage.noteWrite(1);
    assert.equal(asked, 2);
  });

  it('meters every blob and document written through the storage, and nothing else', async () => {
    const storage = new FilesystemStorage(path.join(await tempDir(), 'storage'));
    await storage.init();
    const written: number[] = [];
    const metered = meterWrites(storage, { noteWrite: (bytes) => written.push(bytes) });
    const { digest } = await metered.putBlob(Buffer.from('twelve bytes'), { contentType: 'application/octet-stream' });
    await metered.putDocument('tags/x', { a: 1 });
    assert.deepEqual(written, [12, '{"a":1}'.length]);
    assert.ok(await metered.statBlob(digest), 'other methods reach the storage itself');
    assert.equal(metered.description, storage.description);
    await metered.deleteBlob(digest);
    assert.equal(written.length, 2);
  });
});

describe('garbage collection with a storage quota (NIXERY_STORAGE_QUOTA)', () => {
  async function fixture() {
    const storage = new FilesystemStorage(path.join(await tempDir(), 'storage'));
    await storage.init();
    const clock = { now: Date.now() };
    const blob = async (content: string | Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip', ageMs = 2 * GRACE) => {
      const { digest, size } = await storage.putBlob(Buffer.from(content), { contentType: mediaType });
      const t = new Date(clock.now - ageMs);
      await fs.utimes(storage.blobPath(digest), t, t);
      return { digest, size, mediaType };
    };
    const manifest = (body: unknown, mediaType: string = MediaType.ociManifest) => blob(JSON.stringify(body), mediaType);
    /** An on-demand image: its manifest cache entry, built `ageMs` ago, with one unique layer of `bytes`. */
    const built = async (name: string, bytes: number, ageMs: number) => {
      const layer = await blob(Buffer.alloc(bytes, name));
      const config = await blob(`config of ${name}`, 'application/vnd.docker.container.image.v1+json');
      const docker = await manifest({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config, layers: [layer] }, MediaType.dockerManifest);
      const oci = await manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] });
      const sbom = await blob(`sbom of ${name}`);
      const sbomRef = await manifest({ schemaVersion: 2, config: sbom, layers: [sbom], subject: docker });
      const key = `manifests/${Buffer.from(name).toString('hex').padEnd(64, '0')}`;
      await storage.putDocument(key, { name, tag: 'latest', system: 'x86_64-linux', manifests: { docker, oci }, config, layers: [layer], sbom: { document: sbom, referrers: { docker: sbomRef, oci: sbomRef } } });
      const t = new Date(clock.now - ageMs);
      await fs.utimes(path.join(storage.root, 'documents', `${key}.json`), t, t);
      return { key, layer: layer.digest, docker: docker.digest };
    };
    const exists = async (digest: string) => (await storage.statBlob(digest)) !== null;
    return { storage, clock, blob, manifest, built, exists };
  }
  const KiB = 1024;

  it('evicts the least recently used on-demand images until under the quota, never a pushed tag; their blobs go a grace delay later', async () => {
    const f = await fixture();
    const pushedLayer = await f.blob(Buffer.alloc(100 * KiB, 'p'));
    const pushedConfig = await f.blob('pushed config', 'application/vnd.oci.image.config.v1+json');
    const pushed = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: pushedConfig, layers: [pushedLayer] });
    await f.storage.putDocument('pushed/team/app/_tags/v1', pushed);
    const oldest = await f.built('shell/oldest', 100 * KiB, 5 * HOUR);
    const older = await f.built('shell/older', 100 * KiB, 4 * HOUR);
    const pulledLately = await f.built('shell/pulled', 100 * KiB, 6 * HOUR);
    const newest = await f.built('shell/newest', 100 * KiB, 3 * HOUR);
    // Built first, but pulled an hour ago: the most recently used.
    await f.storage.putDocument(`pulled/${pulledLately.docker.slice(7)}`, { lastPulled: f.clock.now - HOUR, name: 'shell/pulled' });

    // About 500 KiB in use; a quota of 330 KiB leaves room for the pushed image and two on-demand ones.
    const gc = new GarbageCollector({ storage: f.storage, graceMs: GRACE, log: silentLogger, now: () => f.clock.now, quotaBytes: 330 * KiB });
    const report = await gc.collect();
    assert.equal(report.result, 'ok');
    assert.equal(report.quota?.evictedImages, 2);
    assert.equal(await f.storage.getDocument(oldest.key), null, 'the least recently used goes first');
    assert.equal(await f.storage.getDocument(older.key), null);
    assert.ok(await f.storage.getDocument(newest.key));
    assert.ok(await f.storage.getDocument(pulledLately.key), 'a pull counts as use');
    assert.ok(await f.exists(oldest.layer), 'evicted blobs wait for the grace rule');
    const measure = report.quota!.measure;
    assert.ok(measure.leavingBytes >= 200 * KiB, 'the evicted layers are counted as leaving');
    assert.ok(measure.inUseBytes - measure.leavingBytes <= 330 * KiB, 'what stays is under the quota');
    assert.ok(measure.pinnedBytes >= 100 * KiB && measure.pinnedBytes < 130 * KiB, `the pushed image is pinned (${measure.pinnedBytes})`);

    // A second run right away evicts nothing more: what is leaving counts.
    assert.equal((await gc.collect()).quota?.evictedImages, 0);
    f.clock.now += GRACE;
    const later = await gc.collect();
    assert.equal(later.quota?.evictedImages, 0);
    for (const digest of [oldest.layer, older.layer, oldest.docker]) assert.equal(await f.exists(digest), false, `${digest} swept a grace delay later`);
    for (const digest of [pushed.digest, pushedLayer.digest, newest.layer, pulledLately.layer]) assert.ok(await f.exists(digest), `${digest} kept`);
    assert.ok(later.quota!.measure.inUseBytes <= 330 * KiB);
  });

  it('never evicts a pushed image, even far over the quota, and counts it as pinned', async () => {
    const f = await fixture();
    const layer = await f.blob(Buffer.alloc(200 * KiB, 'p'));
    const pushed = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: layer, layers: [layer] });
    await f.storage.putDocument('pushed/team/app/_tags/v1', pushed);
    const onDemand = await f.built('shell/x', 10 * KiB, 3 * HOUR);
    const gc = new GarbageCollector({ storage: f.storage, graceMs: GRACE, log: silentLogger, now: () => f.clock.now, quotaBytes: 50 * KiB });
    const report = await gc.collect();
    f.clock.now += GRACE;
    await gc.collect();
    assert.equal(report.quota?.evictedImages, 1);
    assert.ok(await f.exists(layer.digest));
    assert.ok(await f.exists(pushed.digest));
    assert.equal(await f.exists(onDemand.layer), false);
    assert.ok(report.quota!.measure.pinnedBytes >= 200 * KiB);
  });

  it('a dry run reports the evictions and deletes nothing', async () => {
    const f = await fixture();
    const image = await f.built('shell/x', 100 * KiB, 3 * HOUR);
    const gc = new GarbageCollector({ storage: f.storage, graceMs: GRACE, log: silentLogger, now: () => f.clock.now, quotaBytes: 10 * KiB });
    const report = await gc.collect({ dryRun: true });
    assert.equal(report.quota?.evictedImages, 1);
    assert.ok(await f.storage.getDocument(image.key));
  });
});
