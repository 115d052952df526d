// Garbage collection (service/gc.ts) on the filesystem backend, specification style: what is
// kept (roots and what they reference), what goes and when (the grace delay, the two-run rule,
// layer cache entries before their blobs), that a dry run changes nothing, that an unreadable
// document stops deletion, the periodic runner, and that pulls still work after a collection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger, silentLogger, type Logger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { MediaType } from '../oci/media-types.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { startAuthServer, TEST_ADMIN_TOKEN } from '../http/test-support.ts';
import { GarbageCollector, GC_STATE_KEY, PeriodicGc, type GcReport, type GcState } from './gc.ts';
import { builtIndexKey } from '../builder/image-index.ts';

const tempDir = tempDirs('nixery-gc-');
const HOUR = 3600_000;
const GRACE = HOUR;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Fixture {
  storage: FilesystemStorage;
  clock: { now: number };
  gc: GarbageCollector;
  /** A blob stored `ageMs` before the clock's now (by its modification time). */
  blob(content: string, ageMs?: number, contentType?: string): Promise<{ digest: string; size: number; mediaType: string }>;
  manifest(body: unknown, ageMs?: number, mediaType?: string): Promise<{ digest: string; size: number; mediaType: string }>;
  exists(digest: string): Promise<boolean>;
  state(): Promise<GcState | null>;
}

async function fixture(options: { log?: Logger } = {}): Promise<Fixture> {
  const storage = new FilesystemStorage(path.join(await tempDir(), 'storage'));
  await storage.init();
  const clock = { now: Date.now() };
  const gc = new GarbageCollector({ storage, graceMs: GRACE, log: options.log ?? silentLogger, now: () => clock.now });
  const age = async (digest: string, ageMs: number) => {
    const t = new Date(clock.now - ageMs);
    await fs.utimes(storage.blobPath(digest), t, t);
  };
  const f: Fixture = {
    storage,
    clock,
    gc,
    async blob(content, ageMs = 2 * GRACE, contentType = LAYER) {
      const { digest, size } = await storage.putBlob(Buffer.from(content), { contentType });
      await age(digest, ageMs);
      return { digest, size, mediaType: contentType };
    },
    manifest(body, ageMs = 2 * GRACE, mediaType = MediaType.ociManifest) {
      return f.blob(JSON.stringify(body), ageMs, mediaType);
    },
    exists: async (digest) => (await storage.statBlob(digest)) !== null,
    state: () => storage.getDocument<GcState>(GC_STATE_KEY),
  };
  return f;
}

/** An image manifest naming a config and layers (each stored old). */
async function image(f: Fixture, name: string): Promise<{ manifest: { digest: string; size: number; mediaType: string }; config: string; layer: string }> {
  const config = await f.blob(`config of ${name}`, undefined, MediaType.ociConfig ?? 'application/vnd.oci.image.config.v1+json');
  const layer = await f.blob(`layer of ${name}`);
  const manifest = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] });
  return { manifest, config: config.digest, layer: layer.digest };
}

/** Two runs a grace delay apart: what the two-run rule needs to delete anything. */
async function twoRuns(f: Fixture): Promise<GcReport> {
  await f.gc.collect();
  f.clock.now += GRACE;
  return f.gc.collect();
}

describe('garbage collection: what goes, and when', () => {
  it('sweeps an old unreferenced blob only on a run at least the grace delay after one first saw it unreferenced', async () => {
    const f = await fixture();
    const garbage = await f.blob('nobody names me', 3 * GRACE);

    const first = await f.gc.collect();
    assert.equal(first.deleted.blob.objects, 0);
    assert.deepEqual(first.withinGrace.blob, { objects: 1, bytes: 15 });
    assert.equal((await f.state())?.candidates[garbage.digest], f.clock.now);

    f.clock.now += GRACE - 1;
    assert.equal((await f.gc.collect()).deleted.blob.objects, 0);
    assert.ok(await f.exists(garbage.digest));

    f.clock.now += 1;
    const last = await f.gc.collect();
    assert.deepEqual(last.deleted.blob, { objects: 1, bytes: 15 });
    assert.equal(await f.exists(garbage.digest), false);
    assert.equal((await f.state())?.candidates[garbage.digest], undefined, 'a deleted blob leaves the record');
  });

  it('never sweeps a blob written less than the grace delay ago, and does not start its record', async () => {
    const f = await fixture();
    const young = await f.blob('just uploaded, manifest to come', 0);
    await f.gc.collect();
    f.clock.now += GRACE - 1;
    const report = await f.gc.collect();
    assert.equal(report.deleted.blob.objects, 0);
    assert.equal(report.withinGrace.blob.objects, 1);
    assert.ok(await f.exists(young.digest));
    assert.deepEqual((await f.state())?.candidates, {});
  });

  it('keeps what a pushed tag, an index child, a referrer of a kept subject, a holder and an on-demand manifest cache entry reference', async () => {
    const f = await fixture();
    // A tagged image.
    const tagged = await image(f, 'tagged');
    await f.storage.putDocument('pushed/team/app/_tags/v1', tagged.manifest);
    // A tagged index and its child.
    const child = await image(f, 'child');
    const index = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [child.manifest] }, undefined, MediaType.ociIndex);
    await f.storage.putDocument('pushed/team/multi/_tags/latest', index);
    // A pushed referrer of the tagged image, and the SBOM of a built one.
    const signature = await f.blob('a signature');
    const referrer = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociEmpty ?? 'application/vnd.oci.empty.v1+json', digest: signature.digest, size: signature.size }, layers: [], subject: tagged.manifest });
    await f.storage.putDocument(`pushed/team/app/_referrers/${tagged.manifest.digest.replace(':', '-')}`, { manifests: [referrer] });
    // Pushed by digest only: held by its repository.
    const held = await image(f, 'held');
    await f.storage.putDocument(`pushed-manifests/${held.manifest.digest.replace(':', '-')}`, { repositories: ['team/app'] });
    // An on-demand build's manifest cache entry, with its SBOM as a built referrer.
    const built = await image(f, 'built');
    const ociBuilt = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { digest: built.config, size: 1 }, layers: [{ digest: built.layer, size: 1 }] });
    const sbomDoc = await f.blob('{"bomFormat":"CycloneDX"}');
    const sbomRef = await f.manifest({ schemaVersion: 2, config: sbomDoc, layers: [sbomDoc], subject: built.manifest });
    const sbomRefOci = await f.manifest({ schemaVersion: 2, config: sbomDoc, layers: [sbomDoc], subject: ociBuilt });
    const builtSbomExtra = await f.blob('only the built-referrers index names this referrer');
    const builtReferrer = await f.manifest({ schemaVersion: 2, layers: [builtSbomExtra], subject: built.manifest, note: 'extra' });
    await f.storage.putDocument(`built-referrers/${built.manifest.digest.replace(':', '-')}`, { manifests: [{ ...builtReferrer }] });
    await f.storage.putDocument('manifests/0123', {
      manifests: { docker: built.manifest, oci: ociBuilt },
      config: { digest: built.config, size: 1, mediaType: 'x' },
      layers: [{ digest: built.layer, size: 1 }],
      sbom: { document: sbomDoc, referrers: { docker: sbomRef, oci: sbomRefOci } },
    });
    const garbage = await f.blob('garbage', 3 * GRACE);

    const report = await twoRuns(f);
    assert.deepEqual(report.deleted.blob, { objects: 1, bytes: 7 });
    assert.equal(await f.exists(garbage.digest), false);
    const kept = [
      tagged.manifest.digest, tagged.config, tagged.layer,
      index.digest, child.manifest.digest, child.config, child.layer,
      referrer.digest, signature.digest,
      held.manifest.digest, held.config, held.layer,
      built.manifest.digest, ociBuilt.digest, built.config, built.layer, sbomDoc.digest, sbomRef.digest, sbomRefOci.digest,
      builtReferrer.digest, builtSbomExtra.digest,
    ];
    for (const digest of kept) assert.ok(await f.exists(digest), `${digest} is kept`);
  });

  it('keeps a multi-platform index built on demand, and its children, by its built-indexes document (a kind it knows)', async () => {
    const lines: Record<string, unknown>[] = [];
    const f = await fixture({ log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) });
    const amd64 = await image(f, 'amd64');
    const arm64 = await image(f, 'arm64');
    const oci = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [amd64.manifest, arm64.manifest] }, undefined, MediaType.ociIndex);
    const docker = await f.manifest({ schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [amd64.manifest, arm64.manifest] }, undefined, MediaType.dockerManifestList);
    await f.storage.putDocument(builtIndexKey(oci.digest), { manifests: { docker, oci } });
    const report = await twoRuns(f);
    assert.equal(report.deleted.blob.objects, 0);
    for (const digest of [oci.digest, docker.digest, amd64.manifest.digest, amd64.layer, arm64.manifest.digest, arm64.config]) assert.ok(await f.exists(digest), `${digest} is kept`);
    assert.deepEqual(lines.filter((l) => /does not know/.test(String(l.msg))), [], 'understood, not kept as an unknown document');
  });

  it('drops a referrer whose subject is no longer kept, and the built-referrers index of a subject that is gone', async () => {
    const f = await fixture();
    const gone = 'sha256:' + 'e'.repeat(64);
    const orphan = await f.manifest({ schemaVersion: 2, layers: [], subject: { digest: gone, size: 1 } });
    await f.storage.putDocument(`built-referrers/sha256-${'e'.repeat(64)}`, { manifests: [orphan] });
    const old = new Date(f.clock.now - 2 * GRACE);
    await fs.utimes(path.join(f.storage.root, 'documents', 'built-referrers', `sha256-${'e'.repeat(64)}.json`), old, old);
    await f.gc.collect();
    f.clock.now += GRACE;
    const report = await f.gc.collect();
    assert.equal(report.deleted.document.objects, 1);
    assert.equal(await f.storage.getDocument(`built-referrers/sha256-${'e'.repeat(64)}`), null);
    assert.equal(report.deleted.blob.objects, 1);
    assert.equal(await f.exists(orphan.digest), false);
  });

  it('keeps a blob referenced again between runs, and clears its record', async () => {
    const f = await fixture();
    const img = await image(f, 'revived');
    await f.gc.collect();
    assert.ok((await f.state())?.candidates[img.layer] !== undefined, 'first seen unreferenced');
    await f.storage.putDocument('pushed/team/app/_tags/v2', img.manifest);
    f.clock.now += GRACE;
    const report = await f.gc.collect();
    assert.equal(report.deleted.blob.objects, 0);
    for (const digest of [img.manifest.digest, img.config, img.layer]) assert.ok(await f.exists(digest));
    assert.deepEqual((await f.state())?.candidates, {});
  });

  it('deletes a layer cache entry whose blob nothing kept references a grace delay before the blob itself', async () => {
    const f = await fixture();
    const layer = await f.blob('a cached layer no image uses any more');
    await f.storage.putDocument('layers/abc', { digest: layer.digest, diffId: 'sha256:' + '1'.repeat(64), size: layer.size });
    const entryPath = path.join(f.storage.root, 'documents', 'layers', 'abc.json');
    const old = new Date(f.clock.now - 2 * GRACE);
    await fs.utimes(entryPath, old, old);

    const first = await f.gc.collect();
    assert.equal(first.withinGrace.layer_cache_entry.objects, 1);
    assert.equal(first.withinGrace.blob.objects, 0, 'the entry keeps its blob while it is kept');
    f.clock.now += GRACE;
    const second = await f.gc.collect();
    assert.equal(second.deleted.layer_cache_entry.objects, 1);
    assert.equal(second.deleted.blob.objects, 0);
    assert.equal(await f.storage.getDocument('layers/abc'), null);
    assert.ok(await f.exists(layer.digest), 'a build that read the entry just before may still reference the blob');
    f.clock.now += GRACE;
    const third = await f.gc.collect();
    assert.equal(third.deleted.blob.objects, 1);
    assert.equal(await f.exists(layer.digest), false);
  });

  it('keeps a layer cache entry (and its blob) while a kept manifest references the blob', async () => {
    const f = await fixture();
    const img = await image(f, 'cached');
    await f.storage.putDocument('pushed/team/app/_tags/v1', img.manifest);
    await f.storage.putDocument('layers/def', { digest: img.layer, diffId: 'sha256:' + '1'.repeat(64), size: 1 });
    const report = await twoRuns(f);
    assert.equal(report.deleted.layer_cache_entry.objects, 0);
    assert.equal(report.withinGrace.layer_cache_entry.objects, 0);
    assert.ok(await f.storage.getDocument('layers/def'));
  });

  it('a dry run reports the same plan as the real run and changes nothing, not even the state', async () => {
    const f = await fixture();
    const garbage = await f.blob('garbage', 3 * GRACE);
    await f.storage.putDocument('layers/abc', { digest: (await f.blob('cached')).digest, diffId: 'x', size: 6 });
    const entry = path.join(f.storage.root, 'documents', 'layers', 'abc.json');
    await fs.utimes(entry, new Date(f.clock.now - 2 * GRACE), new Date(f.clock.now - 2 * GRACE));

    const dryFirst = await f.gc.collect({ dryRun: true });
    assert.equal(await f.state(), null, 'no state written');
    await f.gc.collect();
    const stateBefore = await f.state();
    f.clock.now += GRACE;
    const dry = await f.gc.collect({ dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.deepEqual(await f.state(), stateBefore);
    assert.ok(await f.exists(garbage.digest));
    assert.ok(await f.storage.getDocument('layers/abc'));
    assert.equal(dryFirst.deleted.blob.objects, 0);
    const real = await f.gc.collect();
    assert.deepEqual({ ...dry, dryRun: false, durationSeconds: 0 }, { ...real, durationSeconds: 0 });
    assert.equal(real.deleted.blob.objects, 1);
    assert.equal(real.deleted.layer_cache_entry.objects, 1);
  });

  it('deletes nothing while a document cannot be read, and says which', async () => {
    const lines: Record<string, unknown>[] = [];
    const f = await fixture({ log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) });
    const garbage = await f.blob('maybe named by the broken document', 3 * GRACE);
    await f.gc.collect();
    await fs.mkdir(path.join(f.storage.root, 'documents', 'pushed', 'team', 'app', '_tags'), { recursive: true });
    await fs.writeFile(path.join(f.storage.root, 'documents', 'pushed', 'team', 'app', '_tags', 'v1.json'), '{"digest": "sha256:trunc');
    const stateBefore = await f.state();
    f.clock.now += 2 * GRACE;
    const report = await f.gc.collect();
    assert.equal(report.result, 'incomplete');
    assert.deepEqual(report.unreadable, ['document pushed/team/app/_tags/v1']);
    assert.equal(report.deleted.blob.objects, 0);
    assert.ok(await f.exists(garbage.digest));
    assert.deepEqual(await f.state(), stateBefore, 'the state is not written either');
    assert.ok(lines.some((l) => l.msg === 'garbage collection cannot read an object: it deletes nothing this run' || l.message === 'garbage collection cannot read an object: it deletes nothing this run'));
  });

  it('keeps every digest a document of an unknown kind mentions', async () => {
    const f = await fixture();
    const mentioned = await f.blob('named somewhere unexpected');
    await f.storage.putDocument('future-kind/x', { deep: { list: [`see ${mentioned.digest}`] } });
    const report = await twoRuns(f);
    assert.equal(report.deleted.blob.objects, 0);
    assert.ok(await f.exists(mentioned.digest));
  });

  it('bounds the records of the state document', async () => {
    const f = await fixture();
    const gc = new GarbageCollector({ storage: f.storage, graceMs: GRACE, log: silentLogger, now: () => f.clock.now, maxCandidates: 2 });
    for (let i = 0; i < 4; i++) await f.blob(`garbage ${i}`);
    await gc.collect();
    assert.equal(Object.keys((await f.state())!.candidates).length, 2);
    f.clock.now += GRACE;
    assert.equal((await gc.collect()).deleted.blob.objects, 2);
    assert.equal(Object.keys((await f.state())!.candidates).length, 2, 'the others are recorded now');
  });
});

describe('periodic garbage collection', () => {
  it('counts each run by result, never overlaps runs, and stops', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const report: GcReport = {
      dryRun: false,
      result: 'ok',
      deleted: { blob: { objects: 2, bytes: 300 }, layer_cache_entry: { objects: 1, bytes: 50 }, document: { objects: 0, bytes: 0 } },
      withinGrace: { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } },
      kept: { blobs: { objects: 3, bytes: 1000 }, documents: { objects: 4, bytes: 40 } },
      unreadable: [],
      graceSeconds: 3600,
      durationSeconds: 0.5,
    };
    const periodic = new PeriodicGc({
      collector: {
        collect: async () => {
          calls++;
          await gate;
          return report;
        },
      },
      metrics,
      log: silentLogger,
      intervalMs: 10,
    });
    const a = periodic.run();
    const b = periodic.run();
    assert.equal(a, b);
    release();
    await a;
    assert.equal(calls, 1);
    const text = await metrics.registry.metrics();
    assert.match(text, /nixery_gc_runs_total\{result="ok"\} 1/);
    assert.match(text, /nixery_gc_swept_objects_total\{kind="blob"\} 2/);
    assert.match(text, /nixery_gc_swept_bytes_total\{kind="layer_cache_entry"\} 50/);
    assert.match(text, /nixery_storage_bytes\{kind="blob"\} 1000/);
    assert.match(text, /nixery_gc_duration_seconds_count 1/);

    periodic.start();
    assert.equal(periodic.scheduled, true);
    await periodic.stop();
    assert.equal(periodic.scheduled, false);
  });

  it('counts a failed run as an error and keeps going', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const periodic = new PeriodicGc({ collector: { collect: () => Promise.reject(new Error('bucket unreachable')) }, metrics, log: silentLogger, intervalMs: 1 });
    periodic.start();
    for (let i = 0; i < 200 && !/nixery_gc_runs_total\{result="error"\} [2-9]/.test(await metrics.registry.metrics()); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await periodic.stop();
    assert.match(await metrics.registry.metrics(), /nixery_gc_runs_total\{result="error"\} [2-9]/);
  });
});

describe('pulls after garbage collection', () => {
  it('serves a pushed image, manifest and every blob, after collections with a grace delay of 0', async () => {
    const dir = await tempDir();
    const server = await startAuthServer({ dir, users: [] });
    try {
      const auth = { authorization: `Basic ${Buffer.from(`admin:${TEST_ADMIN_TOKEN}`).toString('base64')}` };
      const push = async (content: Buffer) => {
        const { createHash } = await import('node:crypto');
        const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
        const res = await fetch(`${server.url}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: content });
        assert.equal(res.status, 201, await res.text());
        return { mediaType: LAYER, digest, size: content.length };
      };
      const config = await push(Buffer.from('{"architecture":"amd64","os":"linux"}'));
      const layer = await push(Buffer.from('layer bytes'));
      await push(Buffer.from('an upload nothing references'));
      const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { ...config, mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [layer] });
      const put = await fetch(`${server.url}/v2/team/app/manifests/v1`, { method: 'PUT', headers: { ...auth, 'content-type': MediaType.ociManifest }, body: manifest });
      assert.equal(put.status, 201, await put.text());

      const storage = new FilesystemStorage(path.join(dir, 'storage'));
      await storage.init();
      let now = Date.now() + 1000;
      const gc = new GarbageCollector({ storage, graceMs: 0, log: silentLogger, now: () => now });
      await gc.collect();
      now += 1;
      const report = await gc.collect();
      assert.equal(report.deleted.blob.objects, 1, 'the unreferenced upload');

      const got = await fetch(`${server.url}/v2/team/app/manifests/v1`, { headers: { accept: MediaType.ociManifest } });
      assert.equal(got.status, 200);
      assert.equal(await got.text(), manifest);
      for (const d of [config, layer]) {
        const blob = await fetch(`${server.url}/v2/team/app/blobs/${d.digest}`);
        assert.equal(blob.status, 200, d.digest);
        assert.equal((await blob.arrayBuffer()).byteLength, d.size);
      }
    } finally {
      await server.close();
    }
  });
});
