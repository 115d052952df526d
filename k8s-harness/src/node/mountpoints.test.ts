import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exited, spawn, stopChild, waitForOutput } from '@nixery/test-support';
import { HostMountPoints } from './mountpoints.ts';

const exists = (p: string) => fs.access(p).then(() => true, () => false);

describe('host mount points', () => {
  it('creates missing directories and files, and leaves existing paths as they are', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-mp-'));
    try {
      const points = new HostMountPoints();
      await fs.writeFile(path.join(dir, 'kept'), 'content');
      await points.ensure(path.join(dir, 'a/b/data'), 'dir');
      await points.ensure(path.join(dir, 'a/b/other'), 'file');
      await points.ensure(path.join(dir, 'kept'), 'file');
      assert.ok((await fs.stat(path.join(dir, 'a/b/data'))).isDirectory());
      assert.equal((await fs.stat(path.join(dir, 'a/b/other'))).size, 0);
      assert.equal(await fs.readFile(path.join(dir, 'kept'), 'utf8'), 'content');
      assert.deepEqual(points.created().sort(), [path.join(dir, 'a/b/data'), path.join(dir, 'a/b/other')].sort());
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('is right to never remove one: removing it would detach a mount on it in another namespace', async () => {
    // The kernel behaviour the design rests on, shown with a bind mount in a private mount
    // namespace standing in for another cluster's pod.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-mp-'));
    const volume = path.join(dir, 'volume');
    const target = path.join(dir, 'mountpoint');
    await fs.mkdir(volume);
    await fs.writeFile(path.join(volume, 'data'), 'x');
    await new HostMountPoints().ensure(target, 'dir');
    const pod = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount --bind ${volume} ${target} && echo mounted && read line && ls ${target}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    pod.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitForOutput(pod, /^mounted$/, 10_000);
      execFileSync('rmdir', [target], { timeout: 10_000 });
      pod.stdin.end('go\n');
      await exited(pod, 10_000);
      assert.ok(!out.includes('data'), `the pod lost its volume once the host directory was removed:\n${out}`);
    } finally {
      await stopChild(pod);
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
