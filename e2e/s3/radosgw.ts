// A real S3 server for the tests: Ceph's RADOS Gateway (Debian's radosgw 16) on a one-node Ceph
// cluster that lives in a temporary directory: one monitor, one OSD on memstore (objects in the
// OSD's memory, nothing on disk but the monitor's small database), and radosgw on a free
// loopback port. Its own ceph.conf, cephx keys for each daemon, every daemon in the foreground
// through the test-support process tracker, no systemd; stop() ends them and removes the
// directory. No manager daemon: radosgw needs only the monitor and the OSD. A cluster that does
// not come up within the bounded waits fails with the daemons' logs, never a skip.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { eventually, freePort, run, runOk, spawn, stopChild } from '@nixery/test-support';

const SETUP_HINT = 'scripts/setup.sh installs radosgw, ceph-mon and ceph-osd (see README)';
const START_TIMEOUT_MS = 90_000;

export interface RadosGateway {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The variables that point the SDK and `nixery serve` at this server, path-style. */
  env(bucket: string): Record<string, string>;
  /** An SDK client for the test's own checks. */
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  /** radosgw-admin with this cluster's configuration. */
  admin(args: string[]): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startRadosGateway(): Promise<RadosGateway> {
  for (const tool of ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph-authtool', 'ceph']) await requireOnPath(tool);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-radosgw-'));
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'ceph.conf');
  const keyring = path.join(dir, 'keyring');
  await fs.mkdir(path.join(dir, 'osd', 'ceph-0'), { recursive: true });
  await fs.mkdir(path.join(dir, 'mon'));
  await fs.mkdir(path.join(dir, 'run'));
  await fs.mkdir(path.join(dir, 'log'));
  await fs.writeFile(conf, cephConf(dir, randomUUID(), monPort, rgwPort));
  const children: ChildProcess[] = [];
  let output = '';
  const daemon = (command: string, args: string[]) => {
    const child = spawn(command, ['-c', conf, '-f', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tag = (chunk: Buffer) => (output = (output + `[${command}] ${chunk.toString()}`).slice(-64_000));
    child.stdout!.on('data', tag);
    child.stderr!.on('data', tag);
    children.push(child);
    return child;
  };
  const ceph = (command: string, args: string[]) => runOk(command, ['-c', conf, ...args], { timeoutMs: 30_000 });
  const accessKeyId = 'NIXERYTEST' + randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase();
  const secretAccessKey = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const region = 'us-east-1';

  const gateway: RadosGateway = {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region,
    env: (bucket) => ({
      NIXERY_STORAGE_BACKEND: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    }),
    client: () => new S3Client({ region, endpoint, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } }),
    async createBucket(name) {
      const client = gateway.client();
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    admin: async (args) => (await ceph('radosgw-admin', args)).stdout,
    logs: () => output,
    async stop() {
      // The gateway first, then the OSD, then the monitor they talk to.
      for (const child of [...children].reverse()) await stopChild(child);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await runOk('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await runOk('ceph-authtool', [keyring, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
    await runOk('ceph-authtool', [keyring, '--gen-key', '-n', 'osd.0', '--cap', 'mon', 'allow profile osd', '--cap', 'osd', 'allow *']);
    await runOk('ceph-authtool', [keyring, '--gen-key', '-n', 'client.rgw', '--cap', 'mon', 'allow rw', '--cap', 'osd', 'allow rwx']);
    const monmap = path.join(dir, 'monmap');
    const fsid = (await fs.readFile(conf, 'utf8')).match(/^fsid = (.*)$/m)![1]!;
    await runOk('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--fsid', fsid, monmap]);
    await ceph('ceph-mon', ['-i', 'a', '--mkfs', '--monmap', monmap, '--keyring', keyring]);
    daemon('ceph-mon', ['-i', 'a']);
    const osdUuid = randomUUID();
    // The monitor answers once it has formed its quorum of one.
    await eventually('the Ceph monitor to answer', async () => ((await runCeph(conf, ['osd', 'new', osdUuid, '0'])) ? true : undefined), START_TIMEOUT_MS, 500);
    await ceph('ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    daemon('ceph-osd', ['-i', '0']);
    daemon('radosgw', ['-n', 'client.rgw']);
    await eventually('radosgw to answer S3 requests', () => answers(endpoint, children), START_TIMEOUT_MS, 500);
    await gateway.admin(['user', 'create', '--uid', 'nixery-test', '--display-name', 'nixery tests', '--access-key', accessKeyId, '--secret', secretAccessKey]);
  } catch (error) {
    const logs = await daemonLogs(dir);
    await gateway.stop();
    throw new Error(`the Ceph RADOS Gateway did not come up: ${(error as Error).message}\n${output}\n${logs}`, { cause: error });
  }
  return gateway;
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
ms bind ipv6 = false
ms bind msgr1 = false
# One OSD: pools of one copy, placement across OSDs not hosts, few placement groups.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
osd objectstore = memstore
memstore device bytes = ${4 * 1024 ** 3}
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
keyring = ${dir}/keyring
# Run as the user that started it (root drops to "ceph" unless the data belongs to it).
setuser match path = ${dir}/never
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
`;
}

async function runCeph(conf: string, args: string[]): Promise<boolean> {
  const result = await run('ceph', ['-c', conf, '--connect-timeout', '5', ...args], { timeoutMs: 15_000 });
  return result.code === 0;
}

async function answers(endpoint: string, children: ChildProcess[]): Promise<true | undefined> {
  const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
  if (dead) throw new Error(`${dead.spawnfile} exited (${dead.exitCode ?? dead.signalCode})`);
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.status === 200 ? true : undefined;
  } catch {
    return undefined;
  }
}

async function daemonLogs(dir: string): Promise<string> {
  const logDir = path.join(dir, 'log');
  const names = await fs.readdir(logDir).catch(() => [] as string[]);
  const tails = await Promise.all(names.map(async (name) => `--- ${name}\n${(await fs.readFile(path.join(logDir, name), 'utf8')).slice(-4000)}`));
  return tails.join('\n');
}

async function requireOnPath(tool: string): Promise<void> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin'])) {
    try {
      await fs.access(path.join(dir, tool), fs.constants.X_OK);
      return;
    } catch {
      // not here
    }
  }
  throw new Error(`${tool} is not installed; ${SETUP_HINT}`);
}
