// The storage status (service/storage-status.ts): every garbage collection run records itself in
// one document, whoever ran it; `GET /storage-status` answers from it, on the registry's port or
// on the metrics port, and reads storage at most once per TTL however often it is asked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import { silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { createMetricsServer } from '../http/metrics-server.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { startAuthServer } from '../http/test-support.ts';
import { GarbageCollector, type GcReport } from './gc.ts';
import { GC_LAST_RUN_KEY, nextStorageStatus, StorageStatus, type StorageStatusDocument } from './storage-status.ts';

const tempDir = tempDirs('nixery-storage-status-');

function report(overrides: Partial<GcReport> = {}): GcReport {
  return {
    dryRun: false,
    result: 'ok',
    deleted: { blob: { objects: 3, bytes: 3000 }, layer_cache_entry: { objects: 1, bytes: 100 }, document: { objects: 2, bytes: 50 } },
    expired: { retention: 2, per_name: 1 },
    withinGrace: { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } },
    kept: { blobs: { objects: 10, bytes: 1_000_000 }, documents: { objects: 5, bytes: 2_000 } },
    unreadable: [],
    graceSeconds: 3600,
    durationSeconds: 1.23456,
    ...overrides,
  };
}

describe('the storage status document', () => {
  const at = new Date('2026-12-07T10:00:00Z');

  it('records a complete run: what it swept and freed, and the bytes it counted as in use', () => {
    assert.deepEqual(nextStorageStatus(null, report(), at), {
      version: 1,
      lastGc: { finishedAt: '2026-12-07T10:00:00.000Z', result: 'ok', durationSeconds: 1.235, objectsSwept: 6, bytesFreed: 3150, imagesExpired: 3 },
      usage: { measuredAt: '2026-12-07T10:00:00.000Z', blobBytes: 1_000_000, documentBytes: 2_000, totalBytes: 1_002_000 },
    } satisfies StorageStatusDocument);
  });

  it('keeps the usage of the last complete run after an incomplete one, which counted nothing', () => {
    const complete = nextStorageStatus(null, report(), at);
    const later = new Date('2026-12-07T16:00:00Z');
    const next = nextStorageStatus(complete, report({ result: 'incomplete', deleted: { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } } }), later);
    assert.equal(next.lastGc.result, 'incomplete');
    assert.equal(next.lastGc.finishedAt, later.toISOString());
    assert.deepEqual(next.usage, complete.usage);
    assert.equal(nextStorageStatus(null, report({ result: 'incomplete' }), later).usage, undefined);
  });
});

describe('garbage collection runs and the storage status', () => {
  async function storage() {
    const s = new FilesystemStorage(path.join(await tempDir(), 'storage'));
    await s.init();
    return s;
  }

  it('a run records itself with the bytes it kept; a dry run records nothing', async () => {
    const s = await storage();
    await s.putBlob(Buffer.from('an unreferenced blob, young'), { contentType: 'application/octet-stream' });
    const clock = Date.parse('2026-12-07T12:00:00Z');
    const gc = new GarbageCollector({ storage: s, graceMs: 3600_000, log: silentLogger, now: () => clock });
    await gc.collect({ dryRun: true });
    assert.equal(await s.getDocument(GC_LAST_RUN_KEY), null);
    const run = await gc.collect();
    const status = await new StorageStatus(s).read();
    assert.equal(status.lastGc?.finishedAt, '2026-12-07T12:00:00.000Z');
    assert.equal(status.lastGc?.result, 'ok');
    assert.equal(status.lastGc?.objectsSwept, 0);
    assert.equal(status.usage?.blobBytes, run.kept.blobs.bytes);
    assert.ok(status.usage!.blobBytes > 0);
    // The record is no root and no candidate: a second run keeps it and the counts stay sane.
    await gc.collect();
    assert.notEqual(await s.getDocument(GC_LAST_RUN_KEY), null);
  });

  it('reads storage at most once per TTL, and tries again after a failed read', async () => {
    let reads = 0;
    let fail = false;
    let now = 0;
    const doc = nextStorageStatus(null, report(), new Date(0));
    const status = new StorageStatus(
      {
        getDocument: async <T>() => {
          reads++;
          if (fail) throw new Error('storage is down');
          return doc as T;
        },
      },
      { ttlMs: 30_000, now: () => now },
    );
    await Promise.all([status.read(), status.read(), status.read()]);
    assert.equal(reads, 1);
    now = 29_999;
    await status.read();
    assert.equal(reads, 1);
    now = 30_000;
    fail = true;
    await assert.rejects(status.read(), /storage is down/);
    fail = false;
    assert.equal((await status.read()).usage?.totalBytes, 1_002_000);
    assert.equal(reads, 3);
  });

  it('an empty storage answers nulls, not an error', async () => {
    assert.deepEqual(await new StorageStatus(await storage()).read(), { lastGc: null, usage: null });
  });
});

describe('GET /storage-status', () => {
  it('answers the status as JSON on the registry port, without a credential even when pulls need one', async () => {
    const server = await startAuthServer({ dir: await tempDir(), users: ['alice'], anonymousPull: false });
    try {
      const response = await fetch(`${server.url}/storage-status`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /application\/json/);
      assert.deepEqual(await response.json(), { lastGc: null, usage: null });
    } finally {
      await server.close();
    }
  });

  it('answers on the metrics port instead when the metrics have a port of their own', async () => {
    const doc = nextStorageStatus(null, report(), new Date('2026-12-07T10:00:00Z'));
    const server = createMetricsServer(createMetrics({ defaultMetrics: false }), silentLogger, new StorageStatus({ getDocument: async <T>() => doc as T }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const response = await fetch(`${base}/storage-status`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { lastGc: doc.lastGc, usage: doc.usage });
      assert.equal((await fetch(`${base}/metrics`)).status, 200);
      assert.equal((await fetch(`${base}/other`)).status, 404);
    } finally {
      server.close();
    }
  });
});
