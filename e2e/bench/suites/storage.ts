// Garbage collection at scale (#21): a storage of `gcBlobs` blobs and `gcTags` pushed tags — each
// tag a manifest with its config and eight layers from a shared pool, a tenth of the blobs
// unreferenced — written straight into the filesystem backend's layout. Figures: a GC pass against
// a bare listing of the same storage (the least any collector must do), as seconds per 10,000
// objects; and warm manifest latency by tag with that storage against a storage of one tag, and
// while the server collects in its own process against the same server idle.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setAttribute } from 'fs-xattr';
import { mapLimited } from '../../../registry/dist/cache/single-flight.js';
import { silentLogger } from '../../../registry/dist/log/logger.js';
import { GarbageCollector } from '../../../registry/dist/service/gc.js';
import { FilesystemStorage } from '../../../registry/dist/storage/filesystem.js';
import type { Context } from '../lib/context.ts';
import { mkdirp } from '../lib/exec.ts';
import { median, type Figures } from '../lib/figures.ts';
import { startNixery } from '../lib/servers.ts';
import { wrk, type WrkResult } from '../lib/wrk.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const LAYERS_PER_IMAGE = 8;
const HOUR_SECONDS = 3600;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** Writes blobs as FilesystemStorage keeps them (the file, its content type in an xattr), without its fsyncs. */
class StorageWriter {
  readonly root: string;
  blobs = 0;
  constructor(root: string) {
    this.root = root;
  }
  async blob(content: Buffer, mediaType: string): Promise<Descriptor> {
    const hex = createHash('sha256').update(content).digest('hex');
    const file = path.join(this.root, 'blobs', 'sha256', hex);
    await fs.promises.writeFile(file, content);
    await setAttribute(file, 'user.mime_type', mediaType);
    this.blobs++;
    return { mediaType, digest: `sha256:${hex}`, size: content.length };
  }
  async document(key: string, value: unknown): Promise<void> {
    const file = path.join(this.root, 'documents', `${key}.json`);
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    await fs.promises.writeFile(file, JSON.stringify(value));
  }
}

/** The storage: `tags` images (manifest, config, layers from a pool) and unreferenced blobs, `blobs` in all. */
async function populate(root: string, blobs: number, tags: number, nonce: string): Promise<void> {
  const storage = new FilesystemStorage(root);
  await storage.init();
  const writer = new StorageWriter(root);
  const unreferenced = Math.floor(blobs / 10);
  const pool = blobs - unreferenced - 2 * tags;
  if (pool < LAYERS_PER_IMAGE) throw new Error(`${blobs} blobs are too few for ${tags} tags`);
  const layers = await mapLimited(
    Array.from({ length: pool }, (_, i) => i),
    32,
    (i) => writer.blob(Buffer.from(`layer ${i} ${nonce} ${'x'.repeat(i % 512)}`), LAYER),
  );
  await mapLimited(
    Array.from({ length: tags }, (_, i) => i),
    32,
    async (i) => {
      const config = await writer.blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', bench: `${nonce}-${i}` })), OCI_CONFIG);
      const chosen = Array.from({ length: LAYERS_PER_IMAGE }, (_, k) => layers[(i * 7 + k * 131) % pool]!);
      const manifest = await writer.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: chosen })), OCI_MANIFEST);
      await writer.document(`pushed/bench/img${i % 100}/_tags/t${i}`, manifest);
    },
  );
  await mapLimited(
    Array.from({ length: unreferenced }, (_, i) => i),
    32,
    (i) => writer.blob(Buffer.from(`garbage ${i} ${nonce}`), LAYER),
  );
  if (writer.blobs !== blobs) throw new Error(`wrote ${writer.blobs} blobs, not ${blobs}`);
}

async function seconds(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function storageSuite(ctx: Context, figures: Figures): Promise<void> {
  const { gcBlobs, gcTags } = ctx.sizes;
  const dir = mkdirp(path.join(ctx.workDir, 'storage'));
  const nonce = randomBytes(4).toString('hex');
  const bigRoot = path.join(dir, 'big');
  const populated = await seconds(() => populate(bigRoot, gcBlobs, gcTags, nonce));
  const objects = gcBlobs + gcTags;
  ctx.log(`storage: ${gcBlobs} blobs and ${gcTags} tags written in ${populated.toFixed(1)} s`);

  // A GC pass (nothing is old enough to go: every object is read, marked and counted) against a listing.
  const storage = new FilesystemStorage(bigRoot);
  await storage.init();
  const collector = new GarbageCollector({ storage, graceMs: HOUR_SECONDS * 1000, log: silentLogger });
  const list = async () => {
    let n = 0;
    for await (const _ of storage.listBlobs()) n++;
    for await (const _ of storage.listDocuments()) n++;
    return n;
  };
  const gcRuns: number[] = [];
  const listRuns: number[] = [];
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    listRuns.push(await seconds(list));
    gcRuns.push(await seconds(async () => {
      const report = await collector.collect();
      if (report.result !== 'ok' || report.kept.blobs.objects !== gcBlobs) throw new Error(`the GC pass kept ${report.kept.blobs.objects} of ${gcBlobs} blobs (${report.result})`);
    }));
  }
  const per10k = (s: number) => (s * 10_000) / objects;
  figures.add({
    id: 'storage.gc_pass_per_10k_objects',
    label: `GC pass, ${gcBlobs} blobs and ${gcTags} tags, per 10,000 objects`,
    unit: 's',
    better: 'lower',
    ours: per10k(median(gcRuns)),
    baseline: per10k(median(listRuns)),
    baselineLabel: 'listing the same storage',
    samples: { ours: gcRuns.map(per10k), baseline: listRuns.map(per10k) },
  });

  // Warm manifests by tag: the big storage against one of a single tag; then while the server collects.
  const smallRoot = path.join(dir, 'small');
  await populate(smallRoot, 2 + LAYERS_PER_IMAGE + 1, 1, nonce);
  const load = async (url: string) => wrk(url, { connections: 16, seconds: ctx.sizes.wrkSeconds, headers: { Accept: OCI_MANIFEST }, workDir: dir });
  const checked = (who: string, r: WrkResult) => {
    if (r.errors > 0 || r.non2xx > 0) throw new Error(`${who}: ${r.errors} errors and ${r.non2xx} non-2xx answers of ${r.requests}`);
    return r;
  };
  // Pushed tags only: nothing is built.
  const env = { NIXERY_ON_DEMAND: 'false', NIXERY_GC_INTERVAL: '0' };
  const small = await startNixery(mkdirp(path.join(dir, 'nixery-small')), { ...env, STORAGE_PATH: smallRoot });
  const big = await startNixery(mkdirp(path.join(dir, 'nixery-big')), { ...env, STORAGE_PATH: bigRoot });
  const tagUrl = (host: string, i: number) => `http://${host}/v2/bench/img${i % 100}/manifests/t${i}`;
  const idleSmall: WrkResult[] = [];
  const idleBig: WrkResult[] = [];
  for (let i = 0; i < ctx.sizes.iterations; i++) {
    idleSmall.push(checked('one tag', await load(tagUrl(small.host, 0))));
    idleBig.push(checked('many tags', await load(tagUrl(big.host, gcTags - 1))));
  }
  await small.stop();
  await big.stop();
  figures.add({
    id: 'storage.manifest_p99_large_store',
    label: `warm manifest by tag, p99 at 16 connections, ${gcBlobs} blobs and ${gcTags} tags stored`,
    unit: 'ms',
    better: 'lower',
    ours: median(idleBig.map((r) => r.p99Ms)),
    baseline: median(idleSmall.map((r) => r.p99Ms)),
    baselineLabel: 'one tag stored',
    target: { kind: 'ratio-max', value: 1.5 },
  });

  // The server collecting every second in its own process (a pass takes longer: they run back to back).
  const collecting = await startNixery(mkdirp(path.join(dir, 'nixery-gc')), { ...env, STORAGE_PATH: bigRoot, NIXERY_GC_INTERVAL: '1' });
  const during: WrkResult[] = [];
  try {
    for (let i = 0; i < ctx.sizes.iterations; i++) during.push(checked('while collecting', await load(tagUrl(collecting.host, gcTags - 1))));
  } finally {
    await collecting.stop();
  }
  figures.add({
    id: 'storage.manifest_p99_during_gc',
    label: 'warm manifest by tag, p99 at 16 connections, while the server collects back to back',
    unit: 'ms',
    better: 'lower',
    ours: median(during.map((r) => r.p99Ms)),
    baseline: median(idleBig.map((r) => r.p99Ms)),
    baselineLabel: 'the same storage, no collection',
    target: { kind: 'ratio-max', value: 2 },
  });
  fs.rmSync(dir, { recursive: true, force: true });
}
