// The storage quota and the Nix store collection (issue #21), with real registry processes on the
// filesystem backend.
// Quota: a pushed image and four on-demand images beyond NIXERY_STORAGE_QUOTA; the registry's
// first garbage collection evicts the least recently pulled on-demand images (pull order decides,
// not build order) and keeps every pushed tag; with a quota the pushed image nearly fills, a new
// build is refused with 503 and says why.
// Nix store: the registry runs in a mount namespace of its own with a copy-on-write overlay over
// /nix (the machine's store is shared: a real collection must never touch it), collecting its
// store every few seconds; a slow build in flight keeps its paths live through the collections,
// and once it is stored a collection frees them.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, runOk } from '@nixery/test-support';
import { metricValue } from '../support/metrics.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const MiB = 1024 * 1024;
const TOKEN = 'e2e-quota-push-token-0123456789';
const auth = { Authorization: `Bearer ${TOKEN}` };
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface ErrorBody {
  errors: { code: string; message: string; detail?: Record<string, unknown> }[];
}

async function manifest(registry: RegistryProcess, name: string, reference = 'latest'): Promise<Response> {
  return fetch(`${registry.url}/v2/${name}/manifests/${reference}`, { headers: { Accept: `${DOCKER_MANIFEST}, ${OCI_MANIFEST}` } });
}

/** Pushes `team/app:v1`: one incompressible layer of `layerBytes`; returns its digests. */
async function pushImage(registry: RegistryProcess, layerBytes: number): Promise<{ manifest: string; blobs: string[] }> {
  const layer = randomBytes(layerBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  for (const blob of [layer, config]) {
    const response = await fetch(`${registry.url}/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: auth, body: blob });
    assert.equal(response.status, 201);
  }
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await fetch(`${registry.url}/v2/team/app/manifests/v1`, { method: 'PUT', headers: { ...auth, 'Content-Type': OCI_MANIFEST }, body });
  assert.equal(put.status, 201);
  return { manifest: sha256(body), blobs: [sha256(layer), sha256(config)] };
}

/** The names of the on-demand images whose manifest cache entries are stored. */
async function cachedImageNames(storagePath: string): Promise<string[]> {
  const dir = path.join(storagePath, 'documents', 'manifests');
  const names = new Set<string>();
  for (const file of await fs.readdir(dir)) names.add((JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as { name: string }).name);
  return [...names].sort();
}

/** Bounded: the registry logged `pattern` (a complete garbage collection run, say). */
function logged(registry: RegistryProcess, pattern: RegExp, what: string): Promise<true> {
  return eventually(what, () => (pattern.test(registry.logs()) ? true : undefined), 60_000, 200);
}

describe('registry: storage quota (NIXERY_STORAGE_QUOTA)', () => {
  const registries: RegistryProcess[] = [];
  let storagePath: string | undefined;
  const start = async (env: Record<string, string>) => {
    const registry = await startRegistry({ env: { NIXERY_PUSH_TOKEN: TOKEN, ...env }, ...(storagePath ? { storagePath } : {}) });
    storagePath = registry.storagePath;
    registries.push(registry);
    return registry;
  };
  after(async () => {
    for (const registry of registries) await registry.stop();
    if (storagePath) await fs.rm(storagePath, { recursive: true, force: true });
  });

  let pushed: { manifest: string; blobs: string[] };

  it('filling storage past it evicts the least recently pulled on-demand images and keeps every pushed tag', async () => {
    // Without a quota: the pushed image (1 MiB), then four on-demand images of about 1 MiB each.
    const filling = await start({});
    pushed = await pushImage(filling, MiB);
    for (const name of ['hello', 'cowsay', 'alpha', 'beta']) assert.equal((await manifest(filling, name)).status, 200, name);
    await filling.stop(); // writes the pull records
    // A later process pulls hello again: the first built is now the most recently pulled.
    const puller = await start({});
    assert.equal((await manifest(puller, 'hello')).status, 200);
    assert.equal(await metricValue(puller.url, 'nixery_manifest_cache_total', { result: 'hit' }), 1);
    await puller.stop();
    assert.deepEqual(await cachedImageNames(storagePath!), ['alpha', 'beta', 'cowsay', 'hello']);

    // About 5.3 MiB stored; the quota holds the pushed image and two on-demand ones.
    const quota = Math.round(3.5 * MiB);
    const registry = await start({ NIXERY_STORAGE_QUOTA: String(quota) });
    await logged(registry, /"garbage collection run".*"result":"ok"/, "the registry's first garbage collection run");
    assert.equal(await metricValue(registry.url, 'nixery_storage_quota_bytes'), quota);
    assert.equal(await metricValue(registry.url, 'nixery_storage_quota_evictions_total'), 2);
    assert.deepEqual(await cachedImageNames(storagePath!), ['beta', 'hello'], 'cowsay and alpha were the least recently pulled');
    assert.ok((await metricValue(registry.url, 'nixery_storage_estimated_bytes')) <= quota);

    // Every pushed tag still pulls, manifest and blobs; the images kept are served from the cache.
    const tag = await manifest(registry, 'team/app', 'v1');
    assert.equal(tag.status, 200);
    assert.equal(tag.headers.get('docker-content-digest'), pushed.manifest);
    for (const digest of pushed.blobs) assert.equal((await fetch(`${registry.url}/v2/team/app/blobs/${digest}`)).status, 200, digest);
    for (const name of ['hello', 'beta']) assert.equal((await manifest(registry, name)).status, 200, name);
    assert.equal(await metricValue(registry.url, 'nixery_manifest_cache_total', { result: 'hit' }), 2);
    assert.equal(await metricValue(registry.url, 'nixery_manifest_cache_total', { result: 'miss' }), 0);
  });

  it('refuses a build that would not fit even after evicting every on-demand image: 503 UNAVAILABLE saying why, with Retry-After', async () => {
    for (const registry of registries) await registry.stop();
    // The pushed 1 MiB image leaves half a MiB: no on-demand image fits.
    const quota = Math.round(1.5 * MiB);
    const registry = await start({ NIXERY_STORAGE_QUOTA: String(quota) });
    await logged(registry, /"garbage collection run".*"result":"ok"/, "the registry's first garbage collection run");
    const refused = await manifest(registry, 'cowsay');
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) > 0, 'Retry-After');
    const error = ((await refused.json()) as ErrorBody).errors[0]!;
    assert.equal(error.code, 'UNAVAILABLE');
    assert.match(
      error.message,
      /^the image does not fit in this registry's storage quota: its closure is [\d.]+ (KiB|MiB), and pushed images and other data that cannot be evicted already use [\d.]+ MiB of the 1\.5 MiB quota; images already built are still served$/,
    );
    assert.equal(error.detail?.reason, 'storage_quota');
    assert.equal(error.detail?.quotaBytes, quota);
    assert.ok((error.detail?.pinnedBytes as number) >= MiB, 'the pushed image counts as what cannot be evicted');
    assert.equal(await metricValue(registry.url, 'nixery_builds_rejected_total', { reason: 'over_quota' }), 1);
    assert.ok(registry.logs().includes('"outcome":"storage_failure"'), 'the refusal is logged as a failed build');
    // The pushed tag is still served.
    assert.equal((await manifest(registry, 'team/app', 'v1')).status, 200);
  });
});

describe("registry: collecting its own Nix store (NIXERY_NIX_GC_INTERVAL), in a private overlay over /nix", () => {
  let registry: RegistryProcess | undefined;
  let overlay: string | undefined;
  after(async () => {
    await registry?.stop();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
    if (overlay) await fs.rm(overlay, { recursive: true, force: true });
  });

  it('keeps the paths of a build in flight through collections, and frees them once the build is stored', async () => {
    overlay = await tempDir('nixery-e2e-nix-overlay-');
    await fs.mkdir(path.join(overlay, 'upper'));
    await fs.mkdir(path.join(overlay, 'work'));
    const hostStore = new Set(await fs.readdir('/nix/store'));
    // Copy-on-write /nix for the registry alone; no daemon socket, so every Nix call uses that store.
    const setup = [
      `mount -t overlay overlay -o lowerdir=/nix,upperdir=${overlay}/upper,workdir=${overlay}/work /nix`,
      'rm -rf /nix/var/nix/daemon-socket',
      'touch /nix/var/nix/daemon-socket',
      'exec "$0" "$@"',
    ].join(' && ');
    registry = await startRegistry({
      env: { NIXERY_NIX_GC_INTERVAL: '3', NIX_TIMEOUT: '120', NIX_REMOTE: 'local' },
      prefix: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', setup],
    });
    const pid = registry.child.pid!;
    const seen = (p: string) => path.join(`/proc/${pid}/root`, p);
    const collections = () => (registry!.logs().match(/"nix store collection".*?"result":"ok"/g) ?? []).length;
    await eventually('a first collection of the private store', () => (collections() >= 1 ? true : undefined), 120_000, 500);

    // `slow` sleeps 30 s in its builder: collections run every 3 s meanwhile.
    const pull = manifest(registry, 'slow');
    const rootsDir = seen(`/nix/var/nix/gcroots/nixery/${pid}`);
    const drv = await eventually(
      'the build to root its derivation',
      async () => {
        for (const build of await fs.readdir(rootsDir)) for (const name of await fs.readdir(path.join(rootsDir, build))) if (/-slow-1\.0\.drv$/.test(name)) return `/nix/store/${name}`;
        return undefined;
      },
      120_000,
      200,
    );
    const before = collections();
    await eventually('two more collections while the build is in flight', () => (collections() >= before + 2 ? true : undefined), 60_000, 200);
    // Read-only questions to the registry's private store: Nix counts the build's link as a root, so its paths are live.
    const nixStore = (arg: string) => runOk('nsenter', ['-t', String(pid), '-m', '--', 'nix-store', '--gc', arg], { env: { ...process.env, NIX_REMOTE: 'local' } });
    const roots = (await nixStore('--print-roots')).stdout.split('\n');
    assert.ok(roots.some((line) => line.startsWith(`/nix/var/nix/gcroots/nixery/${pid}/`) && line.endsWith(` -> ${drv}`)), `the build's root is one of Nix's roots:\n${roots.join('\n')}`);
    assert.ok((await nixStore('--print-live')).stdout.split('\n').includes(drv), 'the derivation of the build in flight is live');

    const response = await pull;
    assert.equal(response.status, 200, 'the build survived the collections');
    assert.ok(collections() >= before + 2);

    // Its output, as the image's layers name it.
    const entries = await fs.readdir(path.join(registry.storagePath, 'documents', 'manifests'));
    const layers = (JSON.parse(await fs.readFile(path.join(registry.storagePath, 'documents', 'manifests', entries[0]!), 'utf8')) as { layers: { storePaths: string[] }[] }).layers;
    const out = layers.flatMap((l) => l.storePaths).find((p) => /-slow-1\.0$/.test(p));
    assert.ok(out, 'the image holds the slow package');
    await eventually('a collection after the build to free its output', async () => {
      try {
        await fs.lstat(seen(out));
        return undefined;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'ENOENT' ? true : undefined;
      }
    }, 60_000, 500);
    assert.deepEqual(await fs.readdir(rootsDir), [], 'the roots of the finished build are gone');
    assert.ok(await metricValue(registry.url, 'nixery_nix_store_gc_freed_bytes_total') > 0);

    // The machine's store is untouched: the deletions are whiteouts in the overlay. (Lock files
    // come and go with builds other tests run in the machine's store meanwhile: not store paths.)
    const stillThere = new Set(await fs.readdir('/nix/store'));
    assert.deepEqual([...hostStore].filter((name) => !name.endsWith('.lock') && !stillThere.has(name)), []);
  });
});
