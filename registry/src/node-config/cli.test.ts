// `nixery node-config` as a process, as a DaemonSet pod runs it: files appear, a changed CA is
// written anew, SIGTERM removes exactly its files and leaves someone else's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, exited, freePort, REPO_ROOT, spawn, stopChild, waitForOutput } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';

const tempDir = tempDirs('nixery-node-config-cli-');
const MAIN = path.join(REPO_ROOT, 'registry/src/cli/main.ts');
const HOSTS = ['nixery.team-a.svc.cluster.local:5000', 'nixery.team-a.svc:5000'];
const CA1 = '-----BEGIN CERTIFICATE-----\nONE\n-----END CERTIFICATE-----\n';
const CA2 = '-----BEGIN CERTIFICATE-----\nTWO\n-----END CERTIFICATE-----\n';

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

describe('nixery node-config', () => {
  it('writes the files, rewrites the CA when it changes, and on SIGTERM removes its own only', async () => {
    const root = await tempDir();
    const containerd = path.join(root, 'etc/containerd/certs.d');
    const crio = path.join(root, 'etc/containers/registries.conf.d');
    const crioCerts = path.join(root, 'etc/containers/certs.d');
    for (const dir of [containerd, crio]) await fs.mkdir(dir, { recursive: true });
    const config = path.join(root, 'etc/containerd/config.toml');
    await fs.writeFile(config, 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n');
    const caFile = path.join(root, 'ca/ca.crt');
    await fs.mkdir(path.dirname(caFile));
    await fs.writeFile(caFile, CA1);
    // Someone else's files, in the same directories: never touched.
    const foreignHosts = path.join(containerd, 'docker.io/hosts.toml');
    await fs.mkdir(path.dirname(foreignHosts));
    await fs.writeFile(foreignHosts, 'server = "https://mirror.example"\n');
    await fs.writeFile(path.join(crio, '10-mirror.conf'), 'unqualified-search-registries = ["docker.io"]\n');
    const port = await freePort();

    const child = spawn(
      process.execPath,
      [
        MAIN,
        'node-config',
        '--instance', 'team-a/nixery',
        ...HOSTS.flatMap((h) => ['--host', h]),
        '--server', 'https://10.96.0.12:5000',
        '--ca-file', caFile,
        '--containerd-dir', containerd,
        '--containerd-host-dir', '/etc/containerd/certs.d',
        '--containerd-config', config,
        '--crio-dir', crio,
        '--crio-certs-dir', crioCerts,
        '--ready-listen', `127.0.0.1:${port}`,
        '--interval', '0.2',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      await waitForOutput(child, /node-config running/, 30_000);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      assert.deepEqual(await listFiles(containerd), [
        'docker.io/hosts.toml',
        `${HOSTS[0]}/ca.crt`,
        `${HOSTS[0]}/hosts.toml`,
        `${HOSTS[1]}/ca.crt`,
        `${HOSTS[1]}/hosts.toml`,
      ].sort());
      const hostsToml = await fs.readFile(path.join(containerd, HOSTS[0]!, 'hosts.toml'), 'utf8');
      assert.match(hostsToml, /^# written by nixery node-config for team-a\/nixery\n/);
      assert.match(hostsToml, /ca = "\/etc\/containerd\/certs\.d\/nixery\.team-a\.svc\.cluster\.local:5000\/ca\.crt"/);
      assert.deepEqual(await listFiles(crio), ['10-mirror.conf', '50-nixery-team-a-nixery.conf']);
      assert.deepEqual(await listFiles(crioCerts), ['10.96.0.12:5000/ca.crt']);

      // The kubelet updates a ConfigMap volume by swapping a symlink; a rename is the same to a reader.
      await fs.writeFile(`${caFile}.new`, CA2);
      await fs.rename(`${caFile}.new`, caFile);
      await eventually(
        'the new CA on the node',
        async () => {
          assert.match(await fs.readFile(path.join(containerd, HOSTS[1]!, 'ca.crt'), 'utf8'), /TWO/);
          assert.match(await fs.readFile(path.join(crioCerts, '10.96.0.12:5000/ca.crt'), 'utf8'), /TWO/);
          return true;
        },
        10_000,
        100,
      );

      // containerd stops reading the hosts directory: not ready, and the log says why.
      const warned = waitForOutput(child, /"level":"warn".*config_path/, 10_000);
      await fs.writeFile(config, 'version = 2\n');
      await warned;
      await eventually('/readyz answering 503', async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 503 ? true : undefined), 10_000, 100);

      child.kill('SIGTERM');
      await exited(child, 10_000);
      assert.equal(child.exitCode, 0);
      assert.deepEqual(await listFiles(containerd), ['docker.io/hosts.toml']);
      assert.deepEqual(await fs.readdir(containerd), ['docker.io'], 'the directories it made are gone');
      assert.equal(await fs.readFile(foreignHosts, 'utf8'), 'server = "https://mirror.example"\n');
      assert.deepEqual(await listFiles(crio), ['10-mirror.conf']);
      assert.deepEqual(await listFiles(crioCerts), []);
    } finally {
      await stopChild(child);
    }
  });

  it('refuses a foreign file in its place and reports not ready', async () => {
    const root = await tempDir();
    const containerd = path.join(root, 'certs.d');
    const theirs = path.join(containerd, 'nixery.team-a.svc:5000/hosts.toml');
    await fs.mkdir(path.dirname(theirs), { recursive: true });
    await fs.writeFile(theirs, 'server = "http://elsewhere:5000"\n');
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [MAIN, 'node-config', '--instance', 'team-a/nixery', '--host', 'nixery.team-a.svc:5000', '--server', 'http://10.96.0.12:5000', '--containerd-dir', containerd, '--ready-listen', `127.0.0.1:${port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      await waitForOutput(child, /not written by nixery node-config for team-a\/nixery: left as it is, not overwritten/, 30_000);
      await waitForOutput(child, /node-config running/, 30_000);
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
      child.kill('SIGTERM');
      await exited(child, 10_000);
      assert.equal(await fs.readFile(theirs, 'utf8'), 'server = "http://elsewhere:5000"\n');
    } finally {
      await stopChild(child);
    }
  });
});
