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
import { recordKey, withPush } from '../push/push-locations.ts';

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

  it("sweeps blobs named only by a push record (push/push-locations.ts: what another registry holds), a kind it knows", async () => {
    const lines: Record<string, unknown>[] = [];
    const f = await fixture({ log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) });
    const layer = await f.blob('a layer pushed elsewhere, since collected', 3 * GRACE);
    await f.storage.putDocument(recordKey('registry.example:5000'), withPush(null, 'registry.example:5000', 'team/app', [layer.digest]));
    const report = await twoRuns(f);
    assert.equal(report.deleted.blob.objects, 1);
    assert.equal(await f.exists(layer.digest), false);
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
      deleted: { blob: { objects: 2, bytes: 300 }, layer_cache_entry: { objects: 1, bytes: 50 }, document: { objects: 3, bytes: 0 } },
      expired: { retention: 2, per_name: 1 },
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
    assert.match(text, /nixery_gc_expired_images_total\{reason="retention"\} 2/);
    assert.match(text, /nixery_gc_expired_images_total\{reason="per_name"\} 1/);
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

describe('garbage collection: retention of on-demand images (NIXERY_RETAIN_PULLED_WITHIN, NIXERY_GC_MAX_IMAGES_PER_NAME)', () => {
  const DAY = 24 * HOUR;
  const RETENTION = 30 * DAY;

  /** An on-demand build's manifest cache entry written `ageMs` ago, naming a manifest, config, the given layers and an SBOM. */
  async function built(f: Fixture, key: string, options: { name: string; ageMs: number; layers: { digest: string; size: number; mediaType: string }[]; system?: string }) {
    const config = await f.blob(`config of ${key}`, undefined, 'application/vnd.docker.container.image.v1+json');
    const docker = await f.manifest({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config, layers: options.layers }, undefined, MediaType.dockerManifest);
    const oci = await f.manifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: options.layers });
    const sbom = await f.blob(`sbom of ${key}`);
    const sbomRef = await f.manifest({ schemaVersion: 2, config: sbom, layers: [sbom], subject: docker });
    await f.storage.putDocument(`manifests/${key}`, {
      name: options.name,
      tag: 'latest',
      system: options.system ?? 'x86_64-linux',
      manifests: { docker, oci },
      config,
      layers: options.layers,
      sbom: { document: sbom, referrers: { docker: sbomRef, oci: sbomRef } },
    });
    const t = new Date(f.clock.now - options.ageMs);
    await fs.utimes(path.join(f.storage.root, 'documents', 'manifests', `${key}.json`), t, t);
    return { docker, oci, config: config.digest, sbom: sbom.digest };
  }
  const pull = (f: Fixture, digest: string, name: string, at: number) => f.storage.putDocument(`pulled/${digest.slice(7)}`, { lastPulled: at, name });
  const collector = (f: Fixture, options: { maxImagesPerName?: number } = {}) =>
    new GarbageCollector({ storage: f.storage, graceMs: GRACE, log: silentLogger, now: () => f.clock.now, retentionMs: RETENTION, ...options });

  it('expires an image not pulled within the retention on the second run, its unique blobs a grace delay later, and keeps a pulled one and shared layers', async () => {
    const f = await fixture();
    const gc = collector(f);
    const shared = await f.blob('a layer both images have');
    const unique = await f.blob('a layer only the stale image has');
    const stale = await built(f, 'a'.repeat(64), { name: 'shell/old', ageMs: RETENTION + DAY, layers: [shared, unique] });
    const fresh = await built(f, 'b'.repeat(64), { name: 'shell/hot', ageMs: RETENTION + DAY, layers: [shared] });
    await pull(f, fresh.oci.digest, 'shell/hot', f.clock.now - DAY); // built long ago, pulled yesterday

    const first = await gc.collect();
    assert.deepEqual(first.expired, { retention: 0, per_name: 0 }, 'the first run only records it');
    assert.equal(first.withinGrace.document.objects, 1);
    assert.ok(await f.storage.getDocument(`manifests/${'a'.repeat(64)}`));
    f.clock.now += GRACE;
    const second = await gc.collect();
    assert.deepEqual(second.expired, { retention: 1, per_name: 0 });
    assert.equal(await f.storage.getDocument(`manifests/${'a'.repeat(64)}`), null, 'the stale entry is gone');
    assert.ok(await f.storage.getDocument(`manifests/${'b'.repeat(64)}`), 'the pulled one stays past the retention of its entry');
    assert.ok(await f.exists(unique.digest), 'its blobs wait a grace delay after the entry');
    f.clock.now += GRACE;
    const third = await gc.collect();
    for (const digest of [unique.digest, stale.docker.digest, stale.oci.digest, stale.config, stale.sbom]) assert.equal(await f.exists(digest), false, `${digest} swept`);
    for (const digest of [shared.digest, fresh.docker.digest, fresh.oci.digest, fresh.config]) assert.ok(await f.exists(digest), `${digest} kept`);
    assert.equal(third.expired.retention, 0);
  });

  it('keeps an image pulled between the two runs: the record refreshes, it leaves the record, and counts anew', async () => {
    const f = await fixture();
    const gc = collector(f);
    const layer = await f.blob('layer');
    const image = await built(f, 'c'.repeat(64), { name: 'shell/maybe', ageMs: RETENTION + DAY, layers: [layer] });
    await gc.collect();
    assert.ok((await f.state())?.candidates[`manifests/${'c'.repeat(64)}`] !== undefined);
    f.clock.now += GRACE / 2;
    await pull(f, image.docker.digest, 'shell/maybe', f.clock.now);
    f.clock.now += GRACE;
    const second = await gc.collect();
    assert.deepEqual(second.expired, { retention: 0, per_name: 0 });
    assert.ok(await f.storage.getDocument(`manifests/${'c'.repeat(64)}`));
    assert.equal((await f.state())?.candidates[`manifests/${'c'.repeat(64)}`], undefined);
    assert.ok(await f.exists(layer.digest));
    // Unpulled again for the retention: expired, and its pull record goes with it.
    f.clock.now += RETENTION + HOUR;
    await gc.collect();
    f.clock.now += GRACE;
    const later = await gc.collect();
    assert.equal(later.expired.retention, 1);
    assert.equal(await f.storage.getDocument(`pulled/${image.docker.digest.slice(7)}`), null, 'the pull record goes with its entry');
  });

  it('never expires pushed tags nor manifests held by repositories, and with a retention of 0 keeps on-demand images forever', async () => {
    const f = await fixture();
    const gc = collector(f, { maxImagesPerName: 1 });
    const tagged = await image(f, 'tagged');
    await f.storage.putDocument('pushed/team/app/_tags/v1', tagged.manifest);
    const held = await image(f, 'held');
    await f.storage.putDocument(`pushed-manifests/${held.manifest.digest.replace(':', '-')}`, { repositories: ['team/app'] });
    const layer = await f.blob('on-demand layer');
    await built(f, 'd'.repeat(64), { name: 'shell/old', ageMs: 400 * DAY, layers: [layer] });
    f.clock.now += 400 * DAY;
    await gc.collect();
    f.clock.now += GRACE;
    await gc.collect();
    for (const digest of [tagged.manifest.digest, tagged.layer, held.manifest.digest, held.layer]) assert.ok(await f.exists(digest));
    assert.equal(await f.storage.getDocument(`manifests/${'d'.repeat(64)}`), null);

    const g = await fixture();
    const forever = new GarbageCollector({ storage: g.storage, graceMs: GRACE, log: silentLogger, now: () => g.clock.now, retentionMs: 0 });
    await built(g, 'e'.repeat(64), { name: 'shell/old', ageMs: 400 * DAY, layers: [await g.blob('x')] });
    await forever.collect();
    g.clock.now += GRACE;
    assert.deepEqual((await forever.collect()).expired, { retention: 0, per_name: 0 });
    assert.ok(await g.storage.getDocument(`manifests/${'e'.repeat(64)}`));
  });

  it('keeps the M most recently pulled images of a name and platform, expires the rest (per_name), and counts each image once', async () => {
    const f = await fixture();
    const gc = collector(f, { maxImagesPerName: 2 });
    const images = [];
    for (let i = 0; i < 4; i++) {
      const key = `${i}`.repeat(64);
      images.push(await built(f, key, { name: 'shell/hello', ageMs: 2 * DAY, layers: [await f.blob(`layer ${i}`)] }));
      await pull(f, images[i]!.docker.digest, 'shell/hello', f.clock.now - (10 - i) * HOUR); // 3 is the most recent
    }
    // A second entry of image 0 (another name list resolving to it): one image, counted once.
    const alias = JSON.parse(JSON.stringify(await f.storage.getDocument(`manifests/${'0'.repeat(64)}`)));
    await f.storage.putDocument(`manifests/${'f'.repeat(64)}`, alias);
    const old = new Date(f.clock.now - 2 * DAY);
    await fs.utimes(path.join(f.storage.root, 'documents', 'manifests', `${'f'.repeat(64)}.json`), old, old);
    // Another platform of the name, and another name: limits of their own.
    await built(f, '9'.repeat(64), { name: 'shell/hello', system: 'aarch64-linux', ageMs: 2 * DAY, layers: [await f.blob('arm layer')] });
    await built(f, '8'.repeat(64), { name: 'shell/other', ageMs: 2 * DAY, layers: [await f.blob('other layer')] });

    await gc.collect();
    f.clock.now += GRACE;
    const report = await gc.collect();
    assert.deepEqual(report.expired, { retention: 0, per_name: 2 });
    const left = [];
    for (const key of ['0', '1', '2', '3', 'f', '9', '8']) if (await f.storage.getDocument(`manifests/${key.repeat(64)}`)) left.push(key);
    assert.deepEqual(left, ['2', '3', '9', '8']);
  });

  it('counts expiries in a dry run without deleting, and deletes stale pull records of pushed manifests', async () => {
    const f = await fixture();
    const gc = collector(f);
    await built(f, 'a'.repeat(64), { name: 'shell/old', ageMs: RETENTION + DAY, layers: [await f.blob('l')] });
    const pushedDigest = 'sha256:' + '7'.repeat(64);
    await pull(f, pushedDigest, 'team/app', f.clock.now - RETENTION - DAY);
    await pull(f, 'sha256:' + '6'.repeat(64), 'team/app', f.clock.now - DAY);
    await gc.collect();
    f.clock.now += GRACE;
    const dry = await gc.collect({ dryRun: true });
    assert.deepEqual(dry.expired, { retention: 1, per_name: 0 });
    assert.ok(await f.storage.getDocument(`manifests/${'a'.repeat(64)}`));
    await gc.collect();
    assert.equal(await f.storage.getDocument(`manifests/${'a'.repeat(64)}`), null);
    assert.equal(await f.storage.getDocument(`pulled/${'7'.repeat(64)}`), null, 'stale, naming no on-demand image');
    assert.ok(await f.storage.getDocument(`pulled/${'6'.repeat(64)}`), 'recent: kept');
  });
});
