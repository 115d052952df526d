import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HostMountPoints } from './mountpoints.ts';

const exists = (p: string) => fs.access(p).then(() => true, () => false);

describe('host mount points', () => {
  it('creates a missing mount point and removes it after its last user, if still empty', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-mp-'));
    try {
      const points = new HostMountPoints();
      const target = path.join(dir, 'a/b/data');
      const first = await points.acquire(target, 'dir');
      const second = await points.acquire(path.join(dir, 'a/b/other'), 'file');
      assert.ok(await exists(target));
      assert.deepEqual(points.held().sort(), [path.join(dir, 'a'), path.join(dir, 'a/b/other')].sort());
      await first();
      await first();
      assert.ok(!(await exists(path.join(dir, 'a/b/data'))), 'released and empty: removed');
      assert.ok(await exists(path.join(dir, 'a/b/other')), 'still used');
      await second();
      assert.ok(!(await exists(path.join(dir, 'a'))));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
  it('leaves existing paths and anything that is no longer empty alone', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-mp-'));
    try {
      const points = new HostMountPoints();
      assert.deepEqual(points.held(), []);
      await (await points.acquire(dir, 'dir'))();
      assert.ok(await exists(dir));
      const release = await points.acquire(path.join(dir, 'made'), 'dir');
      await fs.writeFile(path.join(dir, 'made/someone-wrote'), 'x');
      await release();
      assert.ok(await exists(path.join(dir, 'made/someone-wrote')));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
  it('creates permanent mount points and never removes them, not even with a neighbour', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-mp-'));
    try {
      const account = path.join(dir, 'secrets/kubernetes.io/serviceaccount');
      const points = new HostMountPoints([account]);
      await (await points.acquire(account, 'dir'))();
      await (await points.acquire(path.join(dir, 'secrets/other'), 'dir'))();
      assert.ok(await exists(account));
      assert.ok(!(await exists(path.join(dir, 'secrets/other'))));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
