// The project's own images as scripts/build-images.sh writes them (scripts/test.sh builds them
// into .images/ before the suites): what their configs declare, and the registry image run for
// real — unpacked, as its own user, in a root of its own — building an image with the Nix inside
// it. The chart suite (e2e/chart/install.test.ts) runs both images in the test cluster.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { eventually, freePort, runOk, spawn, stopChild } from '@nixery/test-support';
import { projectImageArchives } from '../support/project-images.ts';
import { tempDir } from '../support/registry.ts';

interface ImageConfig {
  config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; ExposedPorts?: Record<string, object> };
}

const inspectConfig = async (archive: string): Promise<ImageConfig> => JSON.parse((await runOk('skopeo', ['inspect', '--config', `oci-archive:${archive}`])).stdout) as ImageConfig;

describe("the project's images", () => {
  const archives = projectImageArchives();

  it('declare non-root users and the entrypoints the chart and the operator pass arguments to', async () => {
    const registry = await inspectConfig(archives.registry);
    assert.equal(registry.config.User, '10000:10000');
    assert.deepEqual(registry.config.Entrypoint, ['/usr/local/bin/node', '/opt/nixery/registry/bin/nixery.js']);
    assert.deepEqual(registry.config.Cmd, ['serve']);
    assert.equal(registry.config.WorkingDir, '/var/lib/nixery');
    assert.deepEqual(Object.keys(registry.config.ExposedPorts ?? {}), ['8080/tcp']);
    const operator = await inspectConfig(archives.operator);
    assert.equal(operator.config.User, '65532:65532');
    assert.deepEqual(operator.config.Entrypoint, ['/usr/local/bin/node', '/opt/nixery/operator/bin/nixery-operator.js']);
    assert.equal(operator.config.Cmd, undefined, 'the chart passes only args');
  });

  it('are small enough to pull quickly', async () => {
    // Compressed sizes as the registry stores them (the layers dominate); see README "The images".
    const sizes = Object.fromEntries(await Promise.all(Object.entries(archives).map(async ([name, file]) => [name, (await fs.stat(file)).size / 2 ** 20])));
    assert.ok(sizes.registry! < 150, `registry image ${sizes.registry!.toFixed(0)} MiB`);
    assert.ok(sizes.operator! < 70, `operator image ${sizes.operator!.toFixed(0)} MiB`);
  });

  describe('the registry image, unpacked and run as its user', () => {
    let dir: string;
    let rootfs: string;
    let registry: ChildProcess | undefined;
    let output = '';
    let url: string;

    before(async () => {
      dir = await tempDir('nixery-e2e-image-');
      await runOk('skopeo', ['copy', '--quiet', `oci-archive:${archives.registry}`, `oci:${path.join(dir, 'layout')}:image`], { timeoutMs: 300_000 });
      // As root, umoci keeps the owners of the layers: /nix belongs to the registry's user.
      await runOk('umoci', ['unpack', '--image', `${path.join(dir, 'layout')}:image`, path.join(dir, 'bundle')], { timeoutMs: 300_000 });
      rootfs = path.join(dir, 'bundle', 'rootfs');
      const runtime = JSON.parse(await fs.readFile(path.join(dir, 'bundle', 'config.json'), 'utf8')) as {
        process: { args: string[]; env: string[]; cwd: string; user: { uid: number; gid: number; additionalGids?: number[] } };
      };
      const { uid, gid } = runtime.process.user;
      assert.notEqual(uid, 0, 'the image runs as a non-root user');
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      // What a container runtime does, minimally: private mounts (/proc, /dev, a /tmp), then
      // chroot, the working directory and the image's user, and exec of its entrypoint with its
      // environment. Host networking; name resolution is not needed (the bundled package set).
      const script = [
        'set -e',
        'r=$1; shift',
        'mount -t proc proc "$r/proc"',
        'mount --rbind /dev "$r/dev"',
        'mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"',
        `exec perl -MPOSIX -e '
          my ($root, $cwd, $uid, $gid, @argv) = @ARGV;
          chroot($root) or die "chroot: $!"; chdir($cwd) or die "chdir $cwd: $!";
          $) = "$gid $gid"; POSIX::setgid($gid) or die "setgid: $!"; POSIX::setuid($uid) or die "setuid: $!";
          exec { $argv[0] } @argv or die "exec: $!"' "$r" "$@"`,
      ].join('\n');
      const env = Object.fromEntries(runtime.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      registry = spawn(
        'unshare',
        ['--mount', '--pid', '--fork', '--kill-child', '--propagation', 'private', '--', 'bash', '-c', script, 'run-image', rootfs, runtime.process.cwd, String(uid), String(gid), ...runtime.process.args, '--host', '127.0.0.1'],
        { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      registry.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      registry.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      await eventually('the registry in the image to answer', async () => {
        if (registry!.exitCode !== null) throw new Error(`the registry exited (${registry!.exitCode}):\n${output}`);
        const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        return response?.status === 200 ? true : undefined;
      }, 60_000, 200);
    });
    after(async () => {
      if (registry) await stopChild(registry);
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    });

    it('serves /v2/hello/manifests/latest, built by the Nix inside it as that user', async () => {
      const response = await fetch(`${url}/v2/hello/manifests/latest`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        signal: AbortSignal.timeout(120_000),
      });
      assert.equal(response.status, 200, `${await response.clone().text()}\n${output}`);
      const manifest = (await response.json()) as { layers: { digest: string }[] };
      assert.ok(manifest.layers.length > 0);
      // The build happened in the image's own store, owned by its user, not on this machine.
      const store = await fs.readdir(path.join(rootfs, 'nix/store'));
      const hello = store.find((p) => /^[a-z0-9]{32}-hello-[0-9.]+$/.test(p));
      assert.ok(hello, `hello in the image's store: ${store.join(' ')}`);
      assert.equal((await fs.stat(path.join(rootfs, 'nix/store', hello))).uid, 10000, 'built by the image user');
      assert.equal((await fs.stat(path.join(rootfs, 'nix/var/nix/db'))).uid, 10000);
      // The storage in the working directory, also the user's.
      assert.equal((await fs.stat(path.join(rootfs, 'var/lib/nixery/.data/storage'))).uid, 10000);
      // A real client pulls it.
      await runOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${new URL(url).port}/hello:latest`, `oci:${path.join(dir, 'pulled')}:hello`]);
    });

    it('has `nixery` on PATH and the product Nix settings for Nix run by hand', async () => {
      const conf = await fs.readFile(path.join(rootfs, 'etc/nix/nix.conf'), 'utf8');
      assert.match(conf, /^build-users-group =$/m);
      assert.match(conf, /^sandbox = false$/m);
      assert.match(await fs.readFile(path.join(rootfs, 'usr/local/bin/nixery'), 'utf8'), /exec \/usr\/local\/bin\/node \/opt\/nixery\/registry\/bin\/nixery\.js "\$@"/);
    });
  });
});
