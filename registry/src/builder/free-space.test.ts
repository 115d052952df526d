import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { formatBytes } from './errors.ts';
import { buildVolumes, FreeSpace, InsufficientSpaceError, type StatFs } from './free-space.ts';

const tempDir = tempDirs('nixery-free-space-');
const GiB = 1024 ** 3;

/** A file system per path: free and total bytes, in 4 KiB blocks. */
function fakeStatfs(volumes: Record<string, { free: number; total: number }>): StatFs & { asked: string[] } {
  const asked: string[] = [];
  const statfs = async (p: string) => {
    asked.push(p);
    const v = volumes[p];
    if (!v) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return { bavail: v.free / 4096, blocks: v.total / 4096, bsize: 4096 };
  };
  return Object.assign(statfs, { asked });
}

describe('free space for new builds', () => {
  it('refuses when either volume has less free than a reserve in bytes, naming which', async () => {
    const volumes = { '/data': { free: 3 * GiB, total: 100 * GiB }, '/nix/store': { free: 3 * GiB, total: 100 * GiB } };
    const space = new FreeSpace({
      volumes: [
        { name: 'storage', path: '/data' },
        { name: 'nix_store', path: '/nix/store' },
      ],
      reserve: { bytes: 2 * GiB },
      statfs: fakeStatfs(volumes),
    });
    await space.check();
    volumes['/data'].free = 2 * GiB - 4096;
    await assert.rejects(space.check(), (error: unknown) => {
      assert.ok(error instanceof InsufficientSpaceError);
      assert.deepEqual([error.volume, error.path, error.freeBytes, error.reserveBytes], ['storage', '/data', 2 * GiB - 4096, 2 * GiB]);
      assert.equal(
        error.message,
        'not enough free disk space to build a new image: the storage has 2.0 GiB free, less than the 2.0 GiB this registry keeps free; images already built are still served',
      );
      return true;
    });
    volumes['/data'].free = 2 * GiB;
    volumes['/nix/store'].free = GiB;
    await assert.rejects(space.check(), { volume: 'nix_store', message: /the Nix store has 1\.0 GiB free/ });
  });

  it('takes a percentage of each file system on its own', async () => {
    const volumes = { '/data': { free: 6 * GiB, total: 100 * GiB }, '/nix/store': { free: 4 * GiB, total: 10 * GiB } };
    const space = new FreeSpace({
      volumes: [
        { name: 'storage', path: '/data' },
        { name: 'nix_store', path: '/nix/store' },
      ],
      reserve: { percent: 5 },
      statfs: fakeStatfs(volumes),
    });
    assert.deepEqual(
      (await space.sample()).map((s) => [s.volume, s.freeBytes, s.totalBytes, s.reserveBytes]),
      [
        ['storage', 6 * GiB, 100 * GiB, 5 * GiB],
        ['nix_store', 4 * GiB, 10 * GiB, GiB / 2],
      ],
    );
    await space.check();
    volumes['/data'].free = 4 * GiB;
    await assert.rejects(space.check(), { volume: 'storage' });
  });

  it('is off with a reserve of 0, and measures a directory not made yet on the file system it will be made on', async () => {
    const statfs = fakeStatfs({ '/': { free: 0, total: GiB } });
    await new FreeSpace({ volumes: [{ name: 'nix_store', path: '/nix/store' }], reserve: { bytes: 0 }, statfs }).check();
    await new FreeSpace({ volumes: [{ name: 'nix_store', path: '/nix/store' }], reserve: { percent: 0 }, statfs }).check();
    const [sample] = await new FreeSpace({ volumes: [{ name: 'nix_store', path: '/nix/store' }], reserve: { bytes: 1 }, statfs }).sample();
    assert.equal(sample!.freeBytes, 0);
    assert.deepEqual(statfs.asked, ['/nix/store', '/nix', '/']);
  });

  it('reads a real file system with statfs', async () => {
    const dir = await tempDir();
    const [sample] = await new FreeSpace({ volumes: [{ name: 'storage', path: path.join(dir, 'not-yet') }], reserve: { bytes: 1 } }).sample();
    const real = await fs.statfs(dir);
    assert.equal(sample!.totalBytes, real.blocks * real.bsize);
    assert.ok(sample!.freeBytes > 0 && sample!.freeBytes <= sample!.totalBytes);
  });

  it('checks the storage and the Nix store, and with GCS storage only the Nix store', () => {
    assert.deepEqual(buildVolumes({ backend: 'filesystem', path: '/var/lib/nixery' }), [
      { name: 'storage', path: '/var/lib/nixery' },
      { name: 'nix_store', path: '/nix/store' },
    ]);
    assert.deepEqual(buildVolumes({ backend: 'gcs' }), [{ name: 'nix_store', path: '/nix/store' }]);
  });

  it('writes sizes for people', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 512 * 1024 ** 2, 20 * GiB, 3 * 1024 ** 4].map(formatBytes), [
      '0 bytes',
      '1023 bytes',
      '1.0 KiB',
      '1.5 KiB',
      '512 MiB',
      '20 GiB',
      '3.0 TiB',
    ]);
  });
});
