// The OCI archives build-images.sh writes: real clients (skopeo, umoci) read them, and the same
// inputs give the same bytes, so an image rebuilt from the same commit has the same digest.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runOk } from '@nixery/test-support';
import { rfc3339, writeArchive, type ImageConfig } from './oci-archive.ts';

const CONFIG: ImageConfig = {
  User: '10000:10000',
  Entrypoint: ['/usr/local/bin/node', '/opt/app.js'],
  Cmd: ['serve'],
  Env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
  WorkingDir: '/var/lib/app',
  ExposedPorts: { '8080/tcp': {} },
};
const EPOCH = 1_700_000_000;

describe('OCI archives of the project images', () => {
  let dir: string;
  let layers: string[];

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'oci-archive-'));
    // Two layers as GNU tar writes them in build-images.sh; the second replaces a file of the first.
    for (const [i, files] of [{ 'etc/greeting': 'hello\n', 'bin/tool': 'v1\n' }, { 'bin/tool': 'v2\n' }].entries()) {
      const root = path.join(dir, `root-${i}`);
      for (const [name, content] of Object.entries(files)) {
        await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
        await fs.writeFile(path.join(root, name), content);
      }
      await runOk('tar', ['--create', `--file=${path.join(dir, `layer-${i}.tar`)}`, `--directory=${root}`, '--sort=name', '--format=gnu', '--numeric-owner', '--owner=0', '--group=0', `--mtime=@${EPOCH}`, '.']);
    }
    layers = [path.join(dir, 'layer-0.tar'), path.join(dir, 'layer-1.tar')];
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('are read by skopeo: the manifest digest, the config and the layers', async () => {
    const out = path.join(dir, 'image.oci.tar');
    const result = await writeArchive({ out, ref: '1.2.3', created: EPOCH, config: CONFIG, layers });
    const raw = (await runOk('skopeo', ['inspect', '--raw', `oci-archive:${out}:1.2.3`])).stdout;
    assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, result.manifestDigest);
    const config = JSON.parse((await runOk('skopeo', ['inspect', '--config', `oci-archive:${out}`])).stdout);
    assert.deepEqual(config.config, CONFIG);
    assert.equal(config.created, rfc3339(EPOCH));
    assert.deepEqual(config.rootfs.diff_ids, result.layers.map((l) => l.diffId));
    for (const [i, layer] of layers.entries()) {
      assert.equal(result.layers[i]!.diffId, `sha256:${createHash('sha256').update(await fs.readFile(layer)).digest('hex')}`);
    }
  });

  it('unpack with umoci to the layers applied in order', async () => {
    const out = path.join(dir, 'unpack.oci.tar');
    await writeArchive({ out, ref: 'latest', created: EPOCH, config: CONFIG, layers });
    await runOk('skopeo', ['copy', '--quiet', `oci-archive:${out}`, `oci:${path.join(dir, 'layout')}:latest`]);
    await runOk('umoci', ['unpack', '--image', `${path.join(dir, 'layout')}:latest`, path.join(dir, 'bundle')]);
    const rootfs = path.join(dir, 'bundle', 'rootfs');
    assert.equal(await fs.readFile(path.join(rootfs, 'bin/tool'), 'utf8'), 'v2\n');
    assert.equal(await fs.readFile(path.join(rootfs, 'etc/greeting'), 'utf8'), 'hello\n');
    const runtime = JSON.parse(await fs.readFile(path.join(dir, 'bundle', 'config.json'), 'utf8'));
    assert.deepEqual(runtime.process.args, ['/usr/local/bin/node', '/opt/app.js', 'serve']);
    assert.deepEqual([runtime.process.user.uid, runtime.process.user.gid], [10000, 10000]);
  });

  it('are byte for byte the same for the same inputs, and differ when the creation time does', async () => {
    const a = await writeArchive({ out: path.join(dir, 'a.oci.tar'), ref: 'x', created: EPOCH, config: CONFIG, layers });
    const b = await writeArchive({ out: path.join(dir, 'b.oci.tar'), ref: 'x', created: EPOCH, config: CONFIG, layers });
    assert.equal(a.manifestDigest, b.manifestDigest);
    assert.ok((await fs.readFile(path.join(dir, 'a.oci.tar'))).equals(await fs.readFile(path.join(dir, 'b.oci.tar'))), 'identical archives');
    const later = await writeArchive({ out: path.join(dir, 'c.oci.tar'), ref: 'x', created: EPOCH + 1, config: CONFIG, layers });
    assert.notEqual(later.manifestDigest, a.manifestDigest);
    assert.deepEqual(later.layers, a.layers, 'the layers themselves do not change');
  });

  it('refuse an image without layers and leave no archive behind', async () => {
    const out = path.join(dir, 'empty.oci.tar');
    await assert.rejects(writeArchive({ out, ref: 'x', created: EPOCH, config: CONFIG, layers: [] }), /at least one layer/);
    await assert.rejects(writeArchive({ out, ref: 'x', created: EPOCH, config: CONFIG, layers: [path.join(dir, 'missing.tar')] }), /ENOENT/);
    await assert.rejects(fs.stat(out), /ENOENT/);
    assert.deepEqual((await fs.readdir(dir)).filter((f) => f.startsWith('.oci-archive-') || f.endsWith('.partial')), []);
  });
});
