// Low disk refuses new builds, not pulls. The registry runs in a mount namespace of its own, its
// storage a 256 MiB tmpfs (it has user xattrs, which filesystem storage needs) and
// NIXERY_MIN_FREE_SPACE at 128 MiB: a file that fills the tmpfs makes free space low without
// filling a real disk. Then a cold build is 503 UNAVAILABLE saying why, a built image is still
// served, the free-space metric shows it, and builds start again once there is room. The Nix
// store takes the same check: with the reserve between the store's free space and the storage's,
// only the store is short.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { metricValue } from '../support/metrics.ts';
import { startRegistry, type RegistryProcess } from '../support/registry.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** The registry with its storage on a tmpfs of `size` bytes, mounted in a mount namespace of its own. */
function onTmpfs(size: number, env: Record<string, string>): Promise<RegistryProcess> {
  return startRegistry({
    env,
    prefix: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `mount -t tmpfs -o size=${size} nixery-e2e "$STORAGE_PATH" && exec "$0" "$@"`],
  });
}

/** The registry's storage as the registry sees it: its tmpfs, reached through its root in /proc. */
function storageSeenBy(registry: RegistryProcess): string {
  return path.join(`/proc/${registry.child.pid}/root`, registry.storagePath);
}

async function freeBytes(dir: string): Promise<number> {
  const stats = await fs.statfs(dir);
  return stats.bavail * stats.bsize;
}

async function manifest(registry: RegistryProcess, name: string): Promise<{ status: number; body: { errors?: { code: string; message: string; detail?: Record<string, unknown> }[]; layers?: { digest: string }[] } }> {
  const response = await fetch(`${registry.url}/v2/${name}/manifests/latest`, { headers: { Accept: DOCKER_MANIFEST } });
  return { status: response.status, body: (await response.json()) as never };
}

describe('registry: free space for new builds', () => {
  const registries: RegistryProcess[] = [];
  after(async () => {
    for (const registry of registries) {
      await registry.stop();
      await fs.rm(registry.storagePath, { recursive: true, force: true });
    }
  });

  it('refuses a cold build with 503 UNAVAILABLE while the storage is below the reserve, and still serves built images', async () => {
    const registry = await onTmpfs(256 * MiB, { NIXERY_MIN_FREE_SPACE: '128Mi' });
    registries.push(registry);
    const storage = storageSeenBy(registry);
    assert.equal((await fs.statfs(storage)).blocks * (await fs.statfs(storage)).bsize, 256 * MiB, 'the storage is the tmpfs');

    const built = await manifest(registry, 'hello');
    assert.equal(built.status, 200);
    assert.equal(await metricValue(registry.url, 'nixery_free_reserve_bytes', { volume: 'storage' }), 128 * MiB);
    assert.ok((await metricValue(registry.url, 'nixery_free_bytes', { volume: 'storage' })) > 128 * MiB);

    // Fill the tmpfs to 64 MiB short of the reserve.
    const filler = path.join(storage, 'filler');
    await fs.writeFile(filler, Buffer.alloc((await freeBytes(storage)) - 64 * MiB));
    const free = await freeBytes(storage);
    assert.ok(free < 128 * MiB);

    const refused = await manifest(registry, 'cowsay');
    assert.equal(refused.status, 503);
    const error = refused.body.errors![0]!;
    assert.equal(error.code, 'UNAVAILABLE');
    assert.match(error.message, /^not enough free disk space to build a new image: the storage has \d+ MiB free, less than the 128 MiB this registry keeps free; images already built are still served$/);
    // The free bytes the check saw: what the test left, less the build lease the refused build took first.
    const { freeBytes: seen, ...rest } = error.detail as { freeBytes: number };
    assert.deepEqual(rest, { volume: 'storage', reserveBytes: 128 * MiB });
    assert.ok(seen <= free && seen > free - MiB, `the check saw ${seen} bytes free, the test left ${free}`);
    assert.ok(registry.logs().includes('"outcome":"storage_failure"'), 'the refusal is logged as a failed build');

    // What is built is still served: the manifest and every layer.
    const again = await manifest(registry, 'hello');
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, built.body);
    for (const layer of built.body.layers!) {
      const blob = await fetch(`${registry.url}/v2/hello/blobs/${layer.digest}`);
      assert.equal(blob.status, 200);
      await blob.arrayBuffer();
    }
    const sampled = await metricValue(registry.url, 'nixery_free_bytes', { volume: 'storage' });
    assert.ok(sampled <= free && sampled > free - MiB, `nixery_free_bytes says ${sampled}, the test left ${free}`);
    assert.ok((await metricValue(registry.url, 'nixery_free_bytes', { volume: 'nix_store' })) > 0, 'the Nix store has its sample too');

    // Room again: the same name builds.
    await fs.rm(filler);
    assert.equal((await manifest(registry, 'cowsay')).status, 200);
  });

  it('refuses a cold build when the Nix store is below the reserve, naming the Nix store', async () => {
    // A reserve between the Nix store's free space and the storage's: only the store is short.
    const nixFree = await freeBytes('/nix/store');
    const registry = await onTmpfs(nixFree + 64 * GiB, { NIXERY_MIN_FREE_SPACE: String(nixFree + 32 * GiB) });
    registries.push(registry);
    assert.ok((await freeBytes(storageSeenBy(registry))) > nixFree + 32 * GiB);

    const refused = await manifest(registry, 'hello');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.errors![0]!.code, 'UNAVAILABLE');
    assert.match(refused.body.errors![0]!.message, /^not enough free disk space to build a new image: the Nix store has .+ free, less than the .+ this registry keeps free/);
    assert.equal(refused.body.errors![0]!.detail!.volume, 'nix_store');
    assert.ok((await metricValue(registry.url, 'nixery_free_bytes', { volume: 'nix_store' })) < nixFree + 32 * GiB);
    assert.equal(await metricValue(registry.url, 'nixery_free_reserve_bytes', { volume: 'nix_store' }), nixFree + 32 * GiB);
  });
});
