import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkHostPathType, CONTAINERD_CONFIG_TOML, hostPathOnNode, prepareNodeRoot } from './node-root.ts';

describe('hostPath volumes on the node root', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-node-root-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const roots = { nodeRoot: path.join(dir, 'root'), certsDir: path.join(dir, 'certs.d') };

  it('maps every path below the node root, /etc/containerd/certs.d and below to the certs dir', () => {
    assert.equal(hostPathOnNode('/etc/containers/registries.conf.d', roots), path.join(dir, 'root/etc/containers/registries.conf.d'));
    assert.equal(hostPathOnNode('/etc/containerd/certs.d', roots), roots.certsDir);
    assert.equal(hostPathOnNode('/etc/containerd/certs.d/', roots), roots.certsDir);
    assert.equal(hostPathOnNode('/etc/containerd/certs.d/reg:5000/hosts.toml', roots), path.join(roots.certsDir, 'reg:5000/hosts.toml'));
    assert.equal(hostPathOnNode('/etc/containerd/certs.dx', roots), path.join(dir, 'root/etc/containerd/certs.dx'));
    assert.equal(hostPathOnNode('/etc/containerd/certs.d', { nodeRoot: roots.nodeRoot }), path.join(dir, 'root/etc/containerd/certs.d'), 'no certs dir: the node root');
    assert.equal(hostPathOnNode('/', roots), roots.nodeRoot);
    assert.equal(hostPathOnNode('/../../etc/passwd', roots), path.join(dir, 'root/etc/passwd'), '.. does not leave the node root');
    assert.throws(() => hostPathOnNode('etc', roots), /not an absolute path/);
  });

  it('lays the node root out as a containerd 2.x node: config.toml with config_path, registries.conf.d', async () => {
    await prepareNodeRoot(roots);
    const config = fs.readFileSync(path.join(roots.nodeRoot, 'etc/containerd/config.toml'), 'utf8');
    assert.equal(config, CONTAINERD_CONFIG_TOML);
    assert.match(config, /^version = 3$/m);
    assert.match(config, /\[plugins\.'io\.containerd\.cri\.v1\.images'\.registry\]\n\s+config_path = "\/etc\/containerd\/certs\.d"/);
    assert.deepEqual(fs.readdirSync(path.join(roots.nodeRoot, 'etc/containers/registries.conf.d')), []);
    assert.ok(fs.statSync(roots.certsDir).isDirectory());
    fs.writeFileSync(path.join(roots.nodeRoot, 'etc/containerd/config.toml'), 'version = 2\n');
    await prepareNodeRoot(roots);
    assert.equal(fs.readFileSync(path.join(roots.nodeRoot, 'etc/containerd/config.toml'), 'utf8'), 'version = 2\n', 'an existing configuration is kept');
  });

  it("checks the types as the kubelet's hostPath plugin, in its words", async () => {
    const p = (name: string) => path.join(dir, 'types', name);
    fs.mkdirSync(path.join(dir, 'types'));
    await checkHostPathType(p('new/deep/dir'), 'DirectoryOrCreate', '/new/deep/dir');
    assert.equal(fs.statSync(p('new/deep/dir')).mode & 0o777, 0o755);
    await checkHostPathType(p('f'), 'FileOrCreate', '/f');
    assert.ok(fs.statSync(p('f')).isFile());
    await assert.rejects(checkHostPathType(p('missing/f'), 'FileOrCreate', '/missing/f'), { message: 'open /missing/f: no such file or directory' });
    await assert.rejects(checkHostPathType(p('f'), 'DirectoryOrCreate', '/f'), { message: 'hostPath type check failed: /f is not a directory' });
    await assert.rejects(checkHostPathType(p('absent'), 'Directory', '/absent'), { message: 'hostPath type check failed: /absent is not a directory' });
    await assert.rejects(checkHostPathType(p('new'), 'File', '/new'), { message: 'hostPath type check failed: /new is not a file' });
    await assert.rejects(checkHostPathType(p('new'), 'FileOrCreate', '/new'), { message: 'hostPath type check failed: /new is not a file' });
    await assert.rejects(checkHostPathType(p('f'), 'Socket', '/f'), { message: 'hostPath type check failed: /f is not a socket file' });
    await assert.rejects(checkHostPathType(p('f'), 'CharDevice', '/f'), { message: 'hostPath type check failed: /f is not a character device' });
    await assert.rejects(checkHostPathType(p('f'), 'BlockDevice', '/f'), { message: 'hostPath type check failed: /f is not a block device' });
    await assert.rejects(checkHostPathType(p('f'), 'Whatever', '/f'), { message: 'Whatever is an invalid volume type' });
    await checkHostPathType(p('absent'), '', '/absent');
    assert.equal(fs.existsSync(p('absent')), false, 'type "": no check, nothing made');
    await checkHostPathType(p('new'), 'Directory', '/new');
    await checkHostPathType(p('f'), 'File', '/f');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(p('sock'), resolve));
    try {
      await checkHostPathType(p('sock'), 'Socket', '/sock');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
