import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { imageFromName } from '../image/name.ts';
import { silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { PackagesNotFoundError, type ImageRequest, type RealisedImage, type StorePath } from '../nix/index.ts';
import { MediaType } from '../oci/media-types.ts';
import type { LayerCompression } from '../pack/index.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { BUILDER_VERSION, ImageBuilder, layerCacheKey, manifestCacheKey, MANIFEST_MEMO_TTL_MS, QUEUE_FULL_RETRY_AFTER_SECONDS, type Evaluate, type Realise } from './builder.ts';
import { GzipVariants, gzipVariantKey, LayerTranscodeError } from './gzip-variant.ts';
import { summarizeResult } from './summary.ts';
import { zstdDecompressSync } from 'node:zlib';
import { BuildQueueFullError, ClientRateLimitedError, ClosureTooLargeError } from './errors.ts';
import { FINGERPRINT_FRESH_MS } from './fingerprint-cache.ts';
import { FreeSpace, InsufficientSpaceError } from './free-space.ts';
import { builtReferrers } from './built-referrers.ts';
import { CYCLONEDX_MEDIA_TYPE } from '../sbom/cyclonedx.ts';
import { GarbageCollector } from '../service/gc.ts';
import { eventually } from '@nixery/test-support';
import { StorageQuotaExceededError, StorageUsage } from '../service/quota.ts';
import { BuildRoots } from '../nix/gc-roots.ts';
import { StoreGate } from '../nix/store-gate.ts';

const tempDir = tempDirs('nixery-builder-');

const HASH_CHARS = '0123456789abcdfghijklmnpqrsvwxyz';
function storePath(name: string): string {
  let hash = '';
  for (let i = 0; i < 32; i++) hash += HASH_CHARS[(name.charCodeAt(i % name.length) * (i + 7)) % 32];
  return `/nix/store/${hash}-${name}`;
}

/** A NAR hash as Nix prints one (SRI); any SHA-256 does for a fake store. */
function narHash(name: string): string {
  return `sha256-${createHash('sha256').update(name).digest('base64')}`;
}

/** A fake /nix/store under a temp root: each package has bin/<name> and references its deps. */
async function fakeStore(packages: Record<string, string[]>): Promise<{ root: string; closure: StorePath[] }> {
  const root = await tempDir();
  const closure: StorePath[] = [];
  for (const [name, deps] of Object.entries(packages)) {
    const p = storePath(name);
    await fs.mkdir(path.join(root, p, 'bin'), { recursive: true });
    await fs.writeFile(path.join(root, p, 'bin', name), `#!/bin/sh\necho ${name}\n`, { mode: 0o555 });
    closure.push({ path: p, narSize: 1000 + name.length, narHash: narHash(name), references: deps.map(storePath) });
  }
  closure.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { root, closure };
}

interface SetupOptions {
  budget?: number;
  realise?: Realise;
  maxConcurrentBuilds?: number;
  maxQueuedBuilds?: number;
  clientBuildsPerMinute?: number;
  now?: () => number;
  /** How long a fake realise takes. */
  realiseMs?: number;
  freeSpace?: FreeSpace;
  /** What the builder sees of the storage (the test keeps the real one). */
  wrapStorage?: (storage: FilesystemStorage) => FilesystemStorage;
  // ---- Storage quota and Nix store roots
  quota?: StorageUsage;
  nixStore?: { gate: StoreGate; roots: BuildRoots };
  layerCompression?: LayerCompression;
}

async function setup(packages: Record<string, string[]>, options: SetupOptions = {}) {
  const { root, closure } = await fakeStore(packages);
  // The path source is hashed for the manifest cache key; any directory does.
  const sourceDir = await tempDir();
  await fs.writeFile(path.join(sourceDir, 'default.nix'), '{ ... }: { }');
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  // Like resolve.nix: the name as given, else the smallest attribute equal to it ignoring case.
  const lookup = (name: string) => (name in packages ? name : Object.keys(packages).sort().find((p) => p.toLowerCase() === name.toLowerCase()));
  const evaluations: ImageRequest[] = [];
  const evaluate: Evaluate = async (request) => {
    evaluations.push(request);
    // As with Nix, the derivations follow from the package source.
    const source = await fs.readFile(path.join(sourceDir, 'default.nix'), 'utf8');
    await new Promise((r) => setTimeout(r, 5));
    const missing = request.packages.filter((p) => lookup(p) === undefined);
    if (missing.length) throw new PackagesNotFoundError(missing);
    return {
      packages: request.packages.map((name) => {
        const attr = lookup(name)!;
        return { name, attrPath: [attr], drvPath: `${storePath(attr + source)}.drv`, outputs: { out: storePath(attr) } };
      }),
      evaluateMs: 5,
    };
  };
  const calls: ImageRequest[] = [];
  const realise: Realise =
    options.realise ??
    (async (request) => {
      calls.push(request);
      await new Promise((r) => setTimeout(r, options.realiseMs ?? 20));
      const result: RealisedImage = {
        packages: request.evaluated!.packages.map((p) => ({ name: p.name, attrPath: p.attrPath, outPaths: Object.values(p.outputs) })),
        closure,
        timings: { evaluateMs: request.evaluated!.evaluateMs, realiseMs: 1, graphMs: 1 },
      };
      return result;
    });
  const metrics = createMetrics({ defaultMetrics: false });
  /** A builder on the same store, source and storage, compressing layers as told. */
  const builderWith = (layerCompression: LayerCompression | undefined) => new ImageBuilder({
    ...(layerCompression ? { layerCompression } : {}),
    storage: options.wrapStorage ? options.wrapStorage(storage) : storage,
    source: { type: 'path', path: sourceDir },
    nixTimeoutSeconds: 5,
    layerBudget: options.budget ?? 94,
    maxConcurrentBuilds: options.maxConcurrentBuilds ?? 2,
    ...(options.maxQueuedBuilds !== undefined ? { maxQueuedBuilds: options.maxQueuedBuilds } : {}),
    ...(options.clientBuildsPerMinute !== undefined ? { clientBuildsPerMinute: options.clientBuildsPerMinute } : {}),
    popularity: new Map(),
    log: silentLogger,
    metrics,
    storeRoot: root,
    realise,
    evaluate,
    ...(options.now ? { now: options.now } : {}),
    ...(options.freeSpace ? { freeSpace: options.freeSpace } : {}),
    ...(options.quota ? { quota: options.quota } : {}),
    ...(options.nixStore ? { nixStore: options.nixStore } : {}),
  });
  const builder = builderWith(options.layerCompression);
  return { builder, builderWith, storage, calls, evaluations, metrics, sourceDir, root };
}

/** A metric's value for one label set, 0 when it has none. */
async function sample(metric: { get(): Promise<{ values: { labels: Partial<Record<string, string | number>>; value: number }[] }> }, labels: Record<string, string> = {}): Promise<number> {
  const values = (await metric.get()).values;
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
}

const base = { cacert: [], 'iana-etc': [] };

describe('image builder', () => {
  it('stores every layer, the config and both manifests, and describes them in its result', async () => {
    const { builder, storage } = await setup({ ...base, hello: ['libc'], libc: [] });
    const result = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(result.mediaType, MediaType.dockerManifest);
    assert.equal(result.digest, result.manifests.docker!.digest);
    assert.equal(result.layers.at(-1)!.kind, 'customisation');
    const packed = result.layers.flatMap((l) => l.storePaths).sort();
    assert.deepEqual(packed, [storePath('cacert'), storePath('hello'), storePath('iana-etc'), storePath('libc')].sort());
    for (const blob of [...result.layers, result.config, result.manifests.docker!, result.manifests.oci]) {
      const info = await storage.statBlob(blob.digest);
      assert.ok(info, `${blob.digest} stored`);
      assert.equal(info.size, blob.size);
    }
    const manifest = JSON.parse((await storage.readBlob(result.digest)).toString());
    assert.deepEqual(manifest.layers.map((l: { digest: string }) => l.digest), result.layers.map((l) => l.digest));
    const config = JSON.parse((await storage.readBlob(result.config.digest)).toString());
    assert.deepEqual(config.rootfs.diff_ids, result.layers.map((l) => l.diffId));
    assert.equal(config.config.Cmd, undefined, 'no bash, no default command');
  });

  it('stores an SBOM after the manifests, as the referrer of both the Docker and the OCI manifest', async () => {
    const { builder, storage } = await setup({ ...base, hello: ['libc'], libc: [] });
    const result = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(result.sbomDigest, result.sbom.referrers.docker!.digest);
    assert.notEqual(result.sbom.referrers.docker!.digest, result.sbom.referrers.oci.digest);
    assert.equal(typeof result.timings.sbomMs, 'number');
    for (const format of ['docker', 'oci'] as const) {
      const referrer = result.sbom.referrers[format]!;
      const manifest = JSON.parse((await storage.readBlob(referrer.digest)).toString());
      assert.equal((await storage.statBlob(referrer.digest))?.contentType, MediaType.ociManifest);
      assert.equal(manifest.artifactType, CYCLONEDX_MEDIA_TYPE);
      assert.deepEqual(manifest.subject, result.manifests[format]);
      assert.deepEqual(manifest.layers, [result.sbom.document]);
      assert.ok(await storage.statBlob(manifest.config.digest), 'the empty config is stored');
      assert.deepEqual(await builtReferrers(storage, result.manifests[format]!.digest), [
        { mediaType: MediaType.ociManifest, digest: referrer.digest, size: referrer.size, artifactType: CYCLONEDX_MEDIA_TYPE },
      ]);
    }
    const sbom = JSON.parse((await storage.readBlob(result.sbom.document.digest)).toString()) as {
      components: { 'bom-ref': string; properties: { name: string; value: string }[] }[];
    };
    const layerOf = new Map(result.layers.flatMap((l) => l.storePaths.map((p) => [p, l.digest] as const)));
    assert.deepEqual(sbom.components.map((c) => c['bom-ref']), [...layerOf.keys()].sort());
    for (const c of sbom.components) assert.deepEqual(c.properties.filter((p) => p.name === 'nixery:layer').map((p) => p.value), [layerOf.get(c['bom-ref'])]);
    assert.deepEqual(await builtReferrers(storage, result.config.digest), [], 'only manifests have referrers');
  });

  it('writes the same SBOM when it builds the same image again; a cache entry from before SBOMs is built again, with one', async () => {
    let time = 0;
    let withoutSboms = false;
    const { builder, calls, storage } = await setup({ ...base, hello: [] }, {
      now: () => time,
      // Cache entries as a registry before SBOMs wrote them.
      wrapStorage: (real) =>
        Object.assign(Object.create(real) as FilesystemStorage, {
          getDocument: async <T>(key: string) => {
            const doc = await real.getDocument<Record<string, unknown>>(key);
            if (withoutSboms && doc && key.startsWith('manifests/')) delete doc.sbom;
            return doc as T | null;
          },
        }),
    });
    const first = await builder.build(imageFromName('hello', 'latest'));
    await storage.deleteBlob(first.sbom.referrers.oci.digest);
    time += MANIFEST_MEMO_TTL_MS;
    const second = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 2, 'a cache entry whose SBOM is gone is not used');
    assert.deepEqual(second.sbom, first.sbom, 'same closure, same source: the same bytes');
    assert.ok(await storage.statBlob(first.sbom.referrers.oci.digest));

    withoutSboms = true;
    time += MANIFEST_MEMO_TTL_MS;
    const third = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 3);
    assert.equal(third.digest, first.digest);
    assert.deepEqual(third.sbom, first.sbom);
  });

  it('packs a layer once: another image with the same store paths reuses it from the layer cache', async () => {
    const { builder, metrics } = await setup({ ...base, hello: [], extra: [] });
    const first = await builder.build(imageFromName('hello', 'latest'));
    const second = await builder.build(imageFromName('hello/extra', 'latest'));
    assert.ok(first.layers.every((l) => !l.cached));
    const reused = second.layers.filter((l) => l.cached);
    assert.ok(reused.length >= 2, 'cacert and iana-etc layers at least');
    for (const layer of reused) assert.ok(first.layers.some((l) => l.digest === layer.digest));
    const hits = (await metrics.layerCache.get()).values.find((v) => v.labels.result === 'hit');
    assert.equal(hits?.value, reused.length);
  });

  it('starts no build while a file system it writes to is below the free-space reserve, and still answers built images', async () => {
    let nixStoreFree = 10 * 1024 ** 3;
    const freeSpace = new FreeSpace({
      volumes: [
        { name: 'storage', path: '/srv/storage' },
        { name: 'nix_store', path: '/nix/store' },
      ],
      reserve: { bytes: 1024 ** 3 },
      statfs: async (p) => ({ bavail: (p === '/nix/store' ? nixStoreFree : 10 * 1024 ** 3) / 4096, blocks: 2 ** 24, bsize: 4096 }),
    });
    const { builder, calls, metrics } = await setup({ ...base, hello: [], other: [] }, { freeSpace });
    const built = await builder.build(imageFromName('hello', 'latest'));
    nixStoreFree = 512 * 1024 ** 2;
    await assert.rejects(builder.build(imageFromName('other', 'latest')), (error: unknown) => {
      assert.ok(error instanceof InsufficientSpaceError);
      assert.equal(error.volume, 'nix_store');
      assert.match(error.message, /the Nix store has 512 MiB free, less than the 1\.0 GiB this registry keeps free/);
      return true;
    });
    assert.equal(calls.length, 1, 'Nix never ran for the refused image');
    assert.equal((await builder.build(imageFromName('hello', 'latest'))).digest, built.digest, 'the built image is still answered');
    const refused = (await metrics.builds.get()).values.find((v) => v.labels.result === 'storage_failure');
    assert.equal(refused?.value, 1);
    nixStoreFree = 2 * 1024 ** 3;
    await builder.build(imageFromName('other', 'latest'));
    assert.equal(calls.length, 2, 'builds start again once there is room');
  });

  it('answers a repeated image from the manifest cache without running Nix', async () => {
    const { builder, calls, metrics } = await setup({ ...base, hello: [] });
    const first = await builder.build(imageFromName('hello', 'latest'));
    const again = await builder.build(imageFromName('hello', 'other-tag'));
    assert.equal(calls.length, 1);
    assert.equal(again.digest, first.digest);
    assert.equal(again.fromCache, true);
    assert.equal(again.tag, 'other-tag');
    const hits = (await metrics.manifestCache.get()).values.find((v) => v.labels.result === 'hit');
    assert.equal(hits?.value, 1);
  });

  it('builds again when the package source changed, or when a cached blob is gone, each once its memo is due', async () => {
    let time = 0;
    const { builder, calls, sourceDir, storage } = await setup({ ...base, hello: [] }, { now: () => time });
    await builder.build(imageFromName('hello', 'latest'));
    await fs.writeFile(path.join(sourceDir, 'default.nix'), '{ ... }: { changed = true; }');
    await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 1, 'a fingerprint younger than FINGERPRINT_FRESH_MS is reused');
    time += FINGERPRINT_FRESH_MS;
    const second = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 2, 'a changed source is a new fingerprint');

    await storage.deleteBlob(second.manifests.oci.digest);
    await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 2, 'a verified cache entry is reused for MANIFEST_MEMO_TTL_MS without reading storage');
    time += MANIFEST_MEMO_TTL_MS;
    const rebuilt = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 3, 'a cache entry whose blobs are gone is not used');
    assert.ok(await storage.statBlob(rebuilt.manifests.oci.digest));
  });

  it('builds an image again, whole, once garbage collection expired it (not pulled within the retention) and swept its blobs', async () => {
    const DAY = 86_400_000;
    let time = Date.now();
    const { builder, calls, storage } = await setup({ ...base, hello: [] }, { now: () => time });
    const first = await builder.build(imageFromName('hello', 'latest'));
    const gc = new GarbageCollector({ storage, graceMs: 60_000, retentionMs: 30 * DAY, log: silentLogger, now: () => time });
    // Never pulled since: past the retention, the entry goes on the second run, its blobs a grace later.
    time += 31 * DAY;
    await gc.collect();
    time += 60_000;
    const expiring = await gc.collect();
    assert.equal(expiring.expired.retention, 1);
    time += 60_000;
    await gc.collect();
    assert.equal(await storage.statBlob(first.manifests.oci.digest), null, 'the expired image is gone from storage');

    time += MANIFEST_MEMO_TTL_MS;
    const again = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(calls.length, 2, 'a cache miss: built again');
    assert.equal(again.digest, first.digest, 'the same image, reproducibly');
    for (const d of [again.manifests.docker!, again.manifests.oci, again.config, ...again.layers]) assert.ok(await storage.statBlob(d.digest), `${d.digest} stored again`);
  });

  it('remembers a verified manifest cache entry: storage is read once per MANIFEST_MEMO_TTL_MS, not per request', async () => {
    let time = 0;
    const { builder, storage, calls, sourceDir } = await setup({ ...base, hello: [] }, { now: () => time });
    const first = await builder.build(imageFromName('hello', 'latest'));
    // A second process over the same storage: its first request reads the cache entry, its next ones do not.
    const reads: string[] = [];
    const counting = Object.assign(Object.create(storage) as FilesystemStorage, {
      getDocument: <T>(key: string) => (reads.push(key), storage.getDocument<T>(key)),
    });
    const other = new ImageBuilder({
      storage: counting,
      source: { type: 'path', path: sourceDir },
      nixTimeoutSeconds: 5,
      layerBudget: 94,
      maxConcurrentBuilds: 1,
      popularity: new Map(),
      log: silentLogger,
      metrics: createMetrics({ defaultMetrics: false }),
      realise: () => Promise.reject(new Error('must be served from the cache')),
      evaluate: () => Promise.reject(new Error('must be served from the cache')),
      now: () => time,
    });
    for (let i = 0; i < 3; i++) assert.equal((await other.build(imageFromName('hello', 'latest'))).digest, first.digest);
    assert.equal(reads.filter((k) => k.startsWith('manifests/')).length, 1);
    time += MANIFEST_MEMO_TTL_MS;
    await other.build(imageFromName('hello', 'latest'));
    assert.equal(reads.filter((k) => k.startsWith('manifests/')).length, 2, 'read again once the memo expired');
    assert.equal(calls.length, 1);
  });

  it('runs one build for concurrent requests of the same image', async () => {
    const { builder, calls } = await setup({ ...base, hello: [] });
    const results = await Promise.all(Array.from({ length: 8 }, () => builder.build(imageFromName('hello', 'latest'))));
    assert.equal(calls.length, 1);
    assert.equal(new Set(results.map((r) => r.digest)).size, 1);
  });

  it('runs builds of different images concurrently only up to the limit', async () => {
    let running = 0;
    let peak = 0;
    const packages = { ...base, a: [], b: [], c: [] };
    const { builder } = await setup(packages, {
      maxConcurrentBuilds: 2,
      realise: async (request) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return {
          packages: request.packages.map((name) => ({ name, attrPath: [name], outPaths: [storePath(name)] })),
          closure: request.packages.map((name) => ({ path: storePath(name), narSize: 1, narHash: narHash(name), references: [] })),
          timings: { evaluateMs: 0, realiseMs: 0, graphMs: 0 },
        };
      },
    });
    await Promise.all(['a', 'b', 'c'].map((name) => builder.build(imageFromName(name, 'latest'))));
    assert.equal(peak, 2);
  });

  it('never exceeds the layer budget, the customisation layer included', async () => {
    const packages: Record<string, string[]> = { ...base };
    const tools = Array.from({ length: 30 }, (_, i) => `tool${i}`);
    for (const tool of tools) packages[tool] = [];
    const { builder } = await setup(packages, { budget: 5 });
    const result = await builder.build(imageFromName(tools.join('/'), 'latest'));
    assert.equal(result.layers.length, 5);
    assert.equal(result.layers.flatMap((l) => l.storePaths).length, 32);
  });

  it('sets the default command to bash when the image has one', async () => {
    const { builder, storage } = await setup({ ...base, bash: [] });
    // The fake package is named bash, so it provides bin/bash.
    const result = await builder.build(imageFromName('bash', 'latest'));
    const config = JSON.parse((await storage.readBlob(result.config.digest)).toString());
    assert.deepEqual(config.config.Cmd, ['bash']);
  });

  it('writes a declared config into the image, as a distinct cached image', async () => {
    const { builder, storage, calls } = await setup({ ...base, hello: [] });
    const plain = await builder.build(imageFromName('hello', 'latest'));
    const declared = await builder.build(imageFromName('hello', 'latest'), { config: { entrypoint: ['/bin/hello'], env: [{ name: 'A', value: '1' }] } });
    assert.notEqual(declared.digest, plain.digest);
    assert.deepEqual(declared.layers.map((l) => l.digest), plain.layers.map((l) => l.digest), 'same layers, another config');
    const config = JSON.parse((await storage.readBlob(declared.config.digest)).toString()).config;
    assert.deepEqual(config.Entrypoint, ['/bin/hello']);
    assert.ok(config.Env.includes('A=1'));
    assert.equal(calls.length, 2);
    const again = await builder.build(imageFromName('hello', 'latest'), { config: { entrypoint: ['/bin/hello'], env: [{ name: 'A', value: '1' }] } });
    assert.equal(again.fromCache, true);
    assert.equal(calls.length, 2);
  });

  it('counts builds by result, including missing packages', async () => {
    const { builder, metrics } = await setup({ ...base, hello: [] });
    await assert.rejects(builder.build(imageFromName('hello/nope', 'latest')), PackagesNotFoundError);
    await builder.build(imageFromName('hello', 'latest'));
    const values = (await metrics.builds.get()).values;
    assert.equal(values.find((v) => v.labels.result === 'not_found')?.value, 1);
    assert.equal(values.find((v) => v.labels.result === 'success')?.value, 1);
  });
  it('shares one build among case variants of a name: one evaluation per spelling, then none', async () => {
    const { builder, calls, evaluations } = await setup({ ...base, hello: [], git: [] });
    const spellings = ['hello', 'Hello', 'hELLO'];
    const first = await Promise.all(spellings.map((name) => builder.build(imageFromName(`${name}/git`, 'latest'))));
    assert.equal(calls.length, 1, 'Nix built the image once');
    assert.equal(evaluations.length, 3, 'one evaluation per spelling');
    assert.equal(new Set(first.map((r) => r.digest)).size, 1, 'one image');
    assert.deepEqual(first.map((r) => r.name), spellings.map((name) => `${name}/git`), 'each answered under its own name');
    const later = await builder.build(imageFromName('HeLLo/git', 'latest'));
    assert.equal(later.digest, first[0]!.digest);
    assert.equal(later.fromCache, true);
    assert.equal(evaluations.length, 4, 'a new spelling costs one evaluation');
    assert.equal(calls.length, 1, 'and no build');
    for (const name of [...spellings, 'HeLLo']) await builder.build(imageFromName(`${name}/git`, 'other-tag'));
    assert.equal(evaluations.length, 4, 'a spelling seen before is answered from the manifest cache');
    assert.equal(calls.length, 1);
  });

  it('builds a name and its case variant listed together once, as the one package they name', async () => {
    const { builder, calls } = await setup({ ...base, hello: [] });
    const both = await builder.build(imageFromName('hello/Hello', 'latest'));
    const one = await builder.build(imageFromName('hello', 'latest'));
    assert.equal(both.digest, one.digest);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.evaluated!.packages.map((p) => p.attrPath.join('.')), ['cacert', 'hello', 'iana-etc']);
  });

  it('remembers names Nix did not find: asking again runs no Nix', async () => {
    const { builder, evaluations, calls } = await setup({ ...base, hello: [] });
    for (let i = 0; i < 3; i++) await assert.rejects(builder.build(imageFromName('hello/nope', 'latest')), PackagesNotFoundError);
    assert.equal(evaluations.length, 1);
    assert.equal(calls.length, 0);
  });

  it('refuses a closure larger than maxClosureBytes before packing, naming both sizes', async () => {
    const { builder, storage, metrics } = await setup({ ...base, hello: [] });
    // The fake closure: cacert, hello and iana-etc, each 1000 bytes plus its name's length.
    const closureBytes = 1006 + 1005 + 1008;
    await assert.rejects(builder.build(imageFromName('hello', 'latest'), { maxClosureBytes: closureBytes - 1 }), (error: unknown) => {
      assert.ok(error instanceof ClosureTooLargeError);
      assert.equal(error.closureBytes, closureBytes);
      assert.equal(error.maxClosureBytes, closureBytes - 1);
      assert.equal(error.message, `the image's closure is 2.9 KiB (${closureBytes} bytes as Nix archives), more than the 2.9 KiB (${closureBytes - 1} bytes) this registry builds on demand per image`);
      return true;
    });
    assert.deepEqual(await fs.readdir(path.join(storage.root, 'blobs/sha256')).catch(() => []), [], 'nothing was packed or stored');
    assert.equal(await sample(metrics.layerCache), 0);
    assert.equal(await sample(metrics.buildsRejected, { reason: 'closure_too_large' }), 1);
    assert.equal(await sample(metrics.builds, { result: 'usage' }), 1);
    const result = await builder.build(imageFromName('hello', 'latest'), { maxClosureBytes: closureBytes });
    assert.equal(result.layers.flatMap((l) => l.storePaths).length, 3, 'a closure of exactly the limit is built');
  });

  it('queues at most maxQueuedBuilds builds and refuses a new one beyond with BuildQueueFullError; joining costs no room', async () => {
    const { builder, calls, metrics } = await setup({ ...base, a: [], b: [], c: [], d: [] }, { maxConcurrentBuilds: 1, maxQueuedBuilds: 2, realiseMs: 50 });
    const running = builder.build(imageFromName('a', 'latest'));
    const queued = [builder.build(imageFromName('b', 'latest')), builder.build(imageFromName('c', 'latest'))];
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(await sample(metrics.buildQueueLength), 2);
    await assert.rejects(builder.build(imageFromName('d', 'latest')), (error: unknown) => {
      assert.ok(error instanceof BuildQueueFullError);
      assert.equal(error.maxQueued, 2);
      assert.equal(error.retryAfterSeconds, QUEUE_FULL_RETRY_AFTER_SECONDS);
      return true;
    });
    const joined = builder.build(imageFromName('c', 'other-tag'));
    await Promise.all([running, ...queued, joined]);
    // b and c are evaluated side by side, so either may reach the queue's slot first.
    assert.deepEqual(calls.map((c) => c.packages.find((p) => p.length === 1)).sort(), ['a', 'b', 'c'], 'd never reached Nix');
    assert.equal(await sample(metrics.buildsRejected, { reason: 'queue_full' }), 1);
    assert.equal(await sample(metrics.buildQueueLength), 0);
    await builder.build(imageFromName('d', 'latest'));
  });

  it('drops a queued build whose every client left: Nix never evaluates or builds it', async () => {
    const { builder, calls, evaluations, metrics } = await setup({ ...base, a: [], b: [] }, { maxConcurrentBuilds: 1, realiseMs: 50 });
    const running = builder.build(imageFromName('a', 'latest'));
    // Until a holds the one build slot (its job evaluates): b must queue behind it, not overtake it.
    await eventually('a to run', () => (evaluations.length > 0 ? true : undefined), 5_000, 1);
    const clients = [new AbortController(), new AbortController()];
    const waiting = clients.map((c) => builder.build(imageFromName('b', 'latest'), { signal: c.signal }));
    await eventually('b to queue', async () => ((await sample(metrics.buildQueueLength)) === 1 ? true : undefined), 5_000, 1);
    clients[0]!.abort(new Error('first client left'));
    await assert.rejects(waiting[0]!, /first client left/);
    assert.equal(await sample(metrics.buildQueueLength), 1, 'another client still waits');
    clients[1]!.abort(new Error('second client left'));
    await assert.rejects(waiting[1]!, /second client left/);
    assert.equal(await sample(metrics.buildQueueLength), 0);
    assert.equal(await sample(metrics.buildsRejected, { reason: 'abandoned' }), 1);
    await running;
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(evaluations.map((e) => e.packages.includes('b')), [false]);
    assert.equal(calls.length, 1);
  });

  it('finishes a running build whose clients all left, and answers the next request from it', async () => {
    const { builder, calls } = await setup({ ...base, a: [] }, { realiseMs: 50 });
    const client = new AbortController();
    const left = builder.build(imageFromName('a', 'latest'), { signal: client.signal });
    await new Promise((r) => setTimeout(r, 20));
    client.abort(new Error('gone'));
    await assert.rejects(left, /gone/);
    const next = await builder.build(imageFromName('a', 'latest'));
    assert.equal(calls.length, 1, 'the next request joined the running build (or read its result)');
    assert.ok(next.digest);
  });

  it('lets each client start clientBuildsPerMinute new builds a minute; cached and joined images are free', async () => {
    let time = 0;
    const { builder, calls, metrics } = await setup({ ...base, a: [], b: [], c: [], d: [] }, { clientBuildsPerMinute: 2, now: () => time });
    await builder.build(imageFromName('a', 'latest'), { client: '10.0.0.1' });
    await Promise.all([builder.build(imageFromName('b', 'latest'), { client: '10.0.0.1' }), builder.build(imageFromName('b', 'latest'), { client: '10.0.0.1' })]);
    await assert.rejects(builder.build(imageFromName('c', 'latest'), { client: '10.0.0.1' }), (error: unknown) => {
      assert.ok(error instanceof ClientRateLimitedError);
      assert.equal(error.client, '10.0.0.1');
      assert.equal(error.perMinute, 2);
      assert.equal(error.retryAfterSeconds, 30);
      assert.match(error.message, /at most 2 builds a minute per client address/);
      return true;
    });
    assert.equal(calls.length, 2, 'the refused build did not run');
    await builder.build(imageFromName('a', 'latest'), { client: '10.0.0.1' });
    await builder.build(imageFromName('c', 'latest'), { client: '10.0.0.2' });
    await builder.build(imageFromName('d', 'latest'));
    assert.equal(await sample(metrics.buildsRejected, { reason: 'rate_limited' }), 1);
    time += 30_000;
    await builder.build(imageFromName('d', 'other'), { client: '10.0.0.1' });
    await builder.build(imageFromName('c/d', 'latest'), { client: '10.0.0.1' });
  });
});

// ---- Storage quota and Nix store roots
describe('image builder: storage quota and Nix store roots', () => {
  it('refuses before packing an image whose closure cannot fit in the quota even after evicting every on-demand image', async () => {
    const closureBytes = 1006 + 1005 + 1008;
    const quota = new StorageUsage({ quotaBytes: 10_000 });
    quota.record({ inUseBytes: 9_000, pinnedBytes: 10_000 - closureBytes + 1, leavingBytes: 0 });
    const { builder, storage, metrics } = await setup({ ...base, hello: [] }, { quota });
    await assert.rejects(builder.build(imageFromName('hello', 'latest')), StorageQuotaExceededError);
    assert.deepEqual(await fs.readdir(path.join(storage.root, 'blobs/sha256')).catch(() => []), [], 'nothing was packed or stored');
    assert.equal(await sample(metrics.buildsRejected, { reason: 'over_quota' }), 1);
    assert.equal(await sample(metrics.builds, { result: 'storage_failure' }), 1);
    quota.record({ inUseBytes: 9_000, pinnedBytes: 10_000 - closureBytes, leavingBytes: 0 });
    await builder.build(imageFromName('hello', 'latest'));
  });

  it('roots the derivations and outputs of a build from its evaluation until it is stored, and forgets evaluations on demand', async () => {
    const roots = new BuildRoots({ base: path.join(await tempDir(), 'gcroots'), log: silentLogger, pid: 7 });
    let rootedWhileRealising: string[] = [];
    const nixStore = { gate: new StoreGate(), roots };
    const { builder, evaluations, sourceDir } = await setup(
      { ...base, hello: [] },
      {
        nixStore,
        realise: async (request) => {
          const builds = await fs.readdir(roots.dir);
          rootedWhileRealising = (await Promise.all(builds.map((b) => fs.readdir(path.join(roots.dir, b))))).flat().sort();
          const { closure } = await fakeStore({ ...base, hello: [] });
          return { packages: request.evaluated!.packages.map((p) => ({ name: p.name, attrPath: p.attrPath, outPaths: Object.values(p.outputs) })), closure, timings: { evaluateMs: 1, realiseMs: 1, graphMs: 1 } };
        },
      },
    );
    // The fake evaluation names derivations after the source's text: make it a valid store path name.
    await fs.writeFile(path.join(sourceDir, 'default.nix'), 'v1');
    await builder.build(imageFromName('hello', 'latest'));
    const expected = evaluations[0]!.packages.flatMap((name) => [path.basename(`${storePath(name + 'v1')}.drv`), path.basename(storePath(name))]).sort();
    assert.equal(expected.length, 6, 'hello, cacert and iana-etc: a derivation and an output each');
    assert.deepEqual(rootedWhileRealising, expected);
    assert.deepEqual(await fs.readdir(roots.dir), [], 'released once stored');
    assert.equal(evaluations.length, 1);
    assert.equal(await builder.resolves(imageFromName('hello', 'latest')), true);
    assert.equal(evaluations.length, 1, 'remembered');
    builder.forgetResolutions();
    assert.equal(await builder.resolves(imageFromName('hello', 'latest')), true);
    assert.equal(evaluations.length, 2, 'evaluated again after a collection may have deleted the derivations');
  });
});

describe('zstd images (NIXERY_LAYER_COMPRESSION=zstd) and their gzip variant', () => {
  const packages = { ...base, hello: ['libc'], libc: [] };
  const DAY = 24 * 3600 * 1000;
  const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  it('packs zstd layers, named tar+zstd by the OCI manifest alone, with the config (diff IDs) of the gzip image', async () => {
    const { builder, builderWith, storage } = await setup(packages, { layerCompression: 'zstd' });
    const zstd = await builder.build(imageFromName('hello', 'latest'));
    const gzip = await builderWith('gzip').build(imageFromName('hello', 'latest'));
    assert.equal(zstd.compression, 'zstd');
    assert.equal(gzip.compression, undefined, 'gzip results stay as they were');
    assert.equal(zstd.manifests.docker, undefined, 'Docker schema 2 has no zstd layers');
    assert.equal(zstd.sbom.referrers.docker, undefined);
    assert.deepEqual([zstd.digest, zstd.mediaType, zstd.size], [zstd.manifests.oci.digest, MediaType.ociManifest, zstd.manifests.oci.size]);
    assert.equal(zstd.sbomDigest, zstd.sbom.referrers.oci.digest);
    // What a NixImage's status shows, and what `nixery build --push` pushes under the tag: the OCI manifest.
    assert.deepEqual(summarizeResult(zstd), { digest: zstd.manifests.oci.digest, mediaType: MediaType.ociManifest, size: zstd.config.size + zstd.layers.reduce((sum, l) => sum + l.size, 0), layers: zstd.layers.length, sbomDigest: zstd.sbom.referrers.oci.digest });
    assert.equal(zstd.config.digest, gzip.config.digest, 'the same config, so the same diff IDs');
    const manifest = JSON.parse((await storage.readBlob(zstd.digest)).toString());
    assert.deepEqual(manifest.layers.map((l: { mediaType: string }) => l.mediaType), zstd.layers.map(() => MediaType.ociLayerZstd));
    for (const [i, layer] of zstd.layers.entries()) {
      assert.notEqual(layer.digest, gzip.layers[i]!.digest);
      assert.equal((await storage.statBlob(layer.digest))?.contentType, MediaType.ociLayerZstd);
      const bytes = await storage.readBlob(layer.digest);
      assert.deepEqual(bytes.subarray(0, 4), ZSTD_MAGIC);
      assert.equal(sha256(zstdDecompressSync(bytes)), layer.diffId);
    }
  });

  it('keys the manifest and layer caches by the compression; gzip keys are those from before zstd', async () => {
    const image = imageFromName('hello', 'latest');
    assert.notEqual(manifestCacheKey('fp', image, undefined, 'zstd'), manifestCacheKey('fp', image, undefined, 'gzip'));
    assert.equal(manifestCacheKey('fp', image, undefined, 'gzip'), `manifests/${sha256(JSON.stringify({ v: BUILDER_VERSION, fingerprint: 'fp', packages: image.packages, system: image.arch.system, config: null })).slice(7)}`);
    assert.notEqual(layerCacheKey('store-paths', { paths: ['/nix/store/a'] }, 'zstd'), layerCacheKey('store-paths', { paths: ['/nix/store/a'] }, 'gzip'));
    assert.equal(layerCacheKey('store-paths', { paths: ['/nix/store/a'] }), `layers/${sha256(JSON.stringify({ v: BUILDER_VERSION, kind: 'store-paths', identity: { paths: ['/nix/store/a'] } })).slice(7)}`);
    // On one storage, each builder finds only its own images.
    const { builder, builderWith, calls } = await setup(packages, { layerCompression: 'zstd' });
    await builder.build(image);
    const gzip = await builderWith('gzip').build(image);
    assert.equal(gzip.fromCache, undefined, 'the zstd image is no gzip builder\'s cache hit');
    const again = await builderWith('zstd').build(image);
    assert.equal(again.fromCache, true);
    assert.equal(again.compression, 'zstd');
    assert.equal(calls.length, 2);
  });

  it('transcodes the gzip variant on demand: the Docker manifest and layers of a gzip build of the same tars, byte for byte, without the Nix store', async () => {
    const { builder, builderWith, storage, root } = await setup(packages, { layerCompression: 'zstd' });
    const zstd = await builder.build(imageFromName('hello', 'latest'));
    // The variant reads stored layers only: the store may be collected by then.
    await fs.rename(root, `${root}.away`);
    const variant = await new GzipVariants(storage, silentLogger).of(zstd);
    await fs.rename(`${root}.away`, root);
    assert.equal((await storage.statBlob(variant.docker.digest))?.contentType, MediaType.dockerManifest);
    // Its SBOM referrer: the zstd image's SBOM document, listed among the Docker manifest's referrers.
    const referrer = JSON.parse((await storage.readBlob(variant.sbomReferrer.digest)).toString());
    assert.deepEqual(referrer.subject, variant.docker);
    assert.deepEqual(referrer.layers, [zstd.sbom.document]);
    assert.deepEqual(await builtReferrers(storage, variant.docker.digest), [{ ...variant.sbomReferrer, artifactType: CYCLONEDX_MEDIA_TYPE }]);
    assert.deepEqual(await storage.getDocument(gzipVariantKey(zstd.manifests.oci.digest)), variant, 'recorded for the next request');
    const gzip = await builderWith('gzip').build(imageFromName('hello', 'latest'));
    assert.deepEqual(variant.layers, gzip.layers.map(({ digest, diffId, size }) => ({ digest, diffId, size })));
    assert.equal(variant.docker.digest, gzip.manifests.docker!.digest, 'the gzip image\'s own Docker manifest');
  });

  it('is made once: concurrent requests share one transcoding, a later process reads the record', async () => {
    const { builder, storage } = await setup(packages, { layerCompression: 'zstd' });
    const zstd = await builder.build(imageFromName('hello', 'latest'));
    const stored: string[] = [];
    const counting = Object.assign(Object.create(storage) as FilesystemStorage, {
      putBlob: (source: Parameters<FilesystemStorage['putBlob']>[0], options: Parameters<FilesystemStorage['putBlob']>[1]) => (stored.push(options.contentType), storage.putBlob(source, options)),
    });
    const variants = new GzipVariants(counting, silentLogger);
    const [a, b] = await Promise.all([variants.of(zstd), variants.of(zstd)]);
    assert.deepEqual(a, b);
    assert.equal(stored.filter((t) => t === MediaType.dockerLayer).length, zstd.layers.length, 'each layer transcoded once');
    stored.length = 0;
    assert.deepEqual(await new GzipVariants(counting, silentLogger).of(zstd), a);
    assert.deepEqual(stored, [], 'nothing made again');
    // The image as a Docker-only reader needs it; a gzip image is left as it is.
    const completed = await variants.withDockerManifest(zstd);
    assert.deepEqual([completed.manifests.docker, completed.sbom.referrers.docker, completed.layers], [a.docker, a.sbomReferrer, zstd.layers]);
  });

  it('refuses a stored layer that does not decompress to its diff ID, recording nothing', async () => {
    const { builder, storage } = await setup(packages, { layerCompression: 'zstd' });
    const zstd = await builder.build(imageFromName('hello', 'latest'));
    const wrong = { ...zstd, layers: zstd.layers.map((l, i) => (i === 0 ? { ...l, diffId: sha256('another tar') } : l)) };
    await assert.rejects(new GzipVariants(storage, silentLogger).of(wrong), (error: Error) => error instanceof LayerTranscodeError && error.message.includes(zstd.layers[0]!.digest));
    assert.equal(await storage.getDocument(gzipVariantKey(zstd.manifests.oci.digest)), null);
    await assert.rejects(new GzipVariants(storage, silentLogger).of(await setup(packages).then(({ builder: gzipBuilder }) => gzipBuilder.build(imageFromName('hello', 'latest')))), RangeError, 'a gzip image has no variant');
  });

  it('keeps the variant\'s blobs while garbage collection keeps the image, and lets them go with it', async () => {
    let time = Date.now();
    const { builder, storage } = await setup(packages, { layerCompression: 'zstd', now: () => time });
    const zstd = await builder.build(imageFromName('hello', 'latest'));
    const variant = await new GzipVariants(storage, silentLogger).of(zstd);
    const variantBlobs = [variant.docker, variant.sbomReferrer, ...variant.layers].map((d) => d.digest);
    const gc = new GarbageCollector({ storage, graceMs: 60_000, retentionMs: 30 * DAY, log: silentLogger, now: () => time });
    for (let run = 0; run < 3; run++) {
      time += 2 * 60_000;
      await gc.collect();
    }
    for (const digest of variantBlobs) assert.ok(await storage.statBlob(digest), `${digest} kept with its image`);
    assert.ok(await storage.getDocument(gzipVariantKey(zstd.digest)));
    // Never pulled: past the retention the image expires, and its variant goes with it.
    time += 31 * DAY;
    for (let run = 0; run < 5; run++) {
      time += 2 * 60_000;
      await gc.collect();
    }
    assert.equal(await storage.statBlob(zstd.digest), null, 'the expired image is gone');
    for (const digest of variantBlobs) assert.equal(await storage.statBlob(digest), null, `${digest} gone with it`);
    assert.equal(await storage.getDocument(gzipVariantKey(zstd.digest)), null, 'and its record');
  });
});
