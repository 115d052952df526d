import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { marker } from './files.ts';
import { NodeConfigSync, startReadinessServer } from './sync.ts';

const tempDir = tempDirs('nixery-node-config-');
const CA1 = '-----BEGIN CERTIFICATE-----\nONE\n-----END CERTIFICATE-----\n';
const CA2 = '-----BEGIN CERTIFICATE-----\nTWO\n-----END CERTIFICATE-----\n';
const HOST = 'nixery.team-a.svc.cluster.local:5000';

async function layout() {
  const root = await tempDir();
  const dirs = { containerdDir: path.join(root, 'certs.d'), crioDir: path.join(root, 'registries.conf.d'), crioCertsDir: path.join(root, 'containers-certs.d') };
  await fs.mkdir(dirs.containerdDir);
  await fs.mkdir(dirs.crioDir);
  return { root, ...dirs };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

describe('NodeConfigSync', () => {
  it('writes, rewrites on a CA change, and removes exactly what it wrote', async () => {
    const l = await layout();
    const caFile = path.join(l.root, 'ca.crt');
    const foreign = path.join(l.crioDir, '10-mirror.conf');
    await fs.writeFile(foreign, '[[registry]]\nprefix = "docker.io"\n');
    const sync = new NodeConfigSync({ instance: 'team-a/nixery', hosts: [HOST], server: 'https://10.96.0.12:5000', caFile, ...l }, silentLogger);

    const waiting = await sync.sync();
    assert.equal(waiting.ready, false);
    assert.match(waiting.problems[0]!, /CA bundle .* not there yet/);
    assert.deepEqual(await listFiles(l.containerdDir), []);

    await fs.writeFile(caFile, CA1);
    assert.deepEqual(await sync.sync(), { ready: true, problems: [], written: sync.report.written });
    assert.deepEqual(await listFiles(l.containerdDir), [`${HOST}/ca.crt`, `${HOST}/hosts.toml`]);
    assert.equal(await fs.readFile(path.join(l.containerdDir, HOST, 'ca.crt'), 'utf8'), `${marker('team-a/nixery')}\n${CA1}`);
    assert.equal(await fs.readFile(path.join(l.crioCertsDir, '10.96.0.12:5000', 'ca.crt'), 'utf8'), `${marker('team-a/nixery')}\n${CA1}`);
    assert.deepEqual(await listFiles(l.crioDir), ['10-mirror.conf', '50-nixery-team-a-nixery.conf']);

    await fs.writeFile(caFile, CA2);
    await sync.sync();
    assert.equal(await fs.readFile(path.join(l.containerdDir, HOST, 'ca.crt'), 'utf8'), `${marker('team-a/nixery')}\n${CA2}`);

    await sync.removeAll();
    assert.deepEqual(await listFiles(l.containerdDir), []);
    assert.deepEqual(await fs.readdir(l.containerdDir), [], 'the host directory it made is gone too');
    assert.deepEqual(await listFiles(l.crioDir), ['10-mirror.conf']);
    assert.deepEqual(await listFiles(l.crioCertsDir), []);
  });

  it('never overwrites a file without its marker, and says so', async () => {
    const l = await layout();
    const theirs = path.join(l.containerdDir, HOST, 'hosts.toml');
    await fs.mkdir(path.dirname(theirs));
    await fs.writeFile(theirs, 'server = "http://elsewhere:5000"\n');
    const lines: string[] = [];
    const log = { ...silentLogger, warn: (msg: string) => void lines.push(msg) };
    const sync = new NodeConfigSync({ instance: 'team-a/nixery', hosts: [HOST], server: 'http://10.96.0.12:5000', containerdDir: l.containerdDir, crioDir: l.crioDir }, log);
    const report = await sync.sync();
    assert.equal(report.ready, false);
    assert.match(report.problems.join('\n'), /hosts\.toml exists and was not written by nixery node-config for team-a\/nixery: left as it is/);
    assert.equal(lines.length, 1);
    assert.equal(await fs.readFile(theirs, 'utf8'), 'server = "http://elsewhere:5000"\n');
    await sync.sync();
    assert.equal(lines.length, 1, 'a steady problem is logged once');
    await sync.removeAll();
    assert.equal(await fs.readFile(theirs, 'utf8'), 'server = "http://elsewhere:5000"\n');
    assert.deepEqual(await listFiles(l.crioDir), []);
  });

  it('a file changed by someone after it was written is not removed', async () => {
    const l = await layout();
    const sync = new NodeConfigSync({ instance: 'team-a/nixery', hosts: [HOST], server: 'http://10.96.0.12:5000', crioDir: l.crioDir }, silentLogger);
    await sync.sync();
    const file = path.join(l.crioDir, '50-nixery-team-a-nixery.conf');
    await fs.writeFile(file, 'edited by hand\n');
    await sync.removeAll();
    assert.equal(await fs.readFile(file, 'utf8'), 'edited by hand\n');
  });

  it('is not ready when containerd does not read the hosts directory; /readyz says why', async () => {
    const l = await layout();
    const config = path.join(l.root, 'config.toml');
    await fs.writeFile(config, 'version = 2\n');
    const sync = new NodeConfigSync(
      { instance: 'team-a/nixery', hosts: [HOST], server: 'http://10.96.0.12:5000', containerdDir: l.containerdDir, containerdHostDir: '/etc/containerd/certs.d', containerdConfig: config },
      silentLogger,
    );
    assert.equal((await sync.sync()).ready, false);
    assert.deepEqual(await listFiles(l.containerdDir), [`${HOST}/hosts.toml`], 'the files are written all the same');
    const server = await startReadinessServer(sync, '127.0.0.1', 0);
    try {
      const port = (server.address() as { port: number }).port;
      const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(notReady.status, 503);
      assert.match(((await notReady.json()) as { problems: string[] }).problems[0]!, /sets no config_path/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      await fs.writeFile(config, 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n');
      await sync.sync();
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      await fs.rm(config);
      assert.equal((await sync.sync()).ready, true, 'no config.toml: not a containerd node, nothing to check');
    } finally {
      server.close();
    }
  });
});
