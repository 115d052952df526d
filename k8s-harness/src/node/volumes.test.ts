import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { DATA_DIR_NAME, writeAtomically } from './atomic-writer.ts';
import { claimDir, containerMounts, prepareVolumes, projectKeys, setVolumeOwnership, syncVolumes, tokenRefreshAt, VolumeError, type TokenRequest, type VolumeSources } from './volumes.ts';

const data = { b: Buffer.from('2'), a: Buffer.from('1') };

describe('Secret and ConfigMap projections', () => {
  it('every key as a file with the default mode, without items', () => {
    assert.deepEqual(projectKeys(data, undefined, 0o644, 'x').map((f) => [f.path, f.content.toString(), f.mode]), [['a', '1', 0o644], ['b', '2', 0o644]]);
  });
  it('only the listed items, at their paths and modes', () => {
    const files = projectKeys(data, [{ key: 'b', path: 'dir/b.txt', mode: 0o400 }], 0o644, 'x');
    assert.deepEqual(files.map((f) => [f.path, f.content.toString(), f.mode]), [['dir/b.txt', '2', 0o400]]);
  });
  it('an item naming a missing key fails the mount', () => {
    assert.throws(() => projectKeys(data, [{ key: 'zz', path: 'z' }], 0o644, 'configmap c'), VolumeError);
  });
});

describe('projected service-account tokens', () => {
  const HOUR = 3600_000;
  it('are renewed at 80% of their lifetime, or after a day at the latest', () => {
    assert.equal(tokenRefreshAt({ issuedAt: 0, expiresAt: HOUR }), 0.8 * HOUR);
    assert.equal(tokenRefreshAt({ issuedAt: 0, expiresAt: 365 * 24 * HOUR }), 24 * HOUR);
  });

  it('a due token is asked for again at a sync and its file replaced; a fresh one waits', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-token-'));
    try {
      const asked: Array<[string, string, TokenRequest]> = [];
      let issued = 0;
      const sources = {
        async serviceAccountToken(namespace: string, account: string, request: TokenRequest) {
          asked.push([namespace, account, request]);
          issued += 1;
          return { token: `token-${issued}`, expirationTimestamp: new Date(Date.now() + (request.expirationSeconds ?? 0) * 1000) };
        },
      } as Partial<VolumeSources> as VolumeSources;
      const pod: V1Pod = {
        metadata: { name: 'p', namespace: 'ns', uid: 'u' },
        spec: {
          serviceAccountName: 'sa',
          containers: [{ name: 'c' }],
          volumes: [{ name: 'tokens', projected: { sources: [{ serviceAccountToken: { path: 'short', expirationSeconds: 3600 } }, { serviceAccountToken: { path: 'long', expirationSeconds: 7200, audience: 'nixery' } }] } }],
        },
      };
      const volumes = await prepareVolumes(pod, dir, dir, sources, '127.0.0.9');
      const volume = volumes.get('tokens')!.path;
      const read = (name: string) => fs.readFile(path.join(volume, name), 'utf8');
      assert.deepEqual([await read('short'), await read('long')], ['token-1', 'token-2']);
      assert.deepEqual(asked.map(([ns, sa, request]) => [ns, sa, request.audiences, request.pod]), [['ns', 'sa', [], { name: 'p', uid: 'u' }], ['ns', 'sa', ['nixery'], { name: 'p', uid: 'u' }]]);

      const unchanged = await syncVolumes(pod, volumes, sources, '127.0.0.9');
      assert.deepEqual(unchanged.updated, []);
      assert.equal(asked.length, 2);
      const shortDue = Date.now() + 0.8 * HOUR;
      assert.ok(Math.abs((unchanged.nextTokenDue ?? 0) - shortDue) < 60_000, 'the next sync is when the short token is due');

      const renewed = await syncVolumes(pod, volumes, sources, '127.0.0.9', shortDue + 1000);
      assert.deepEqual(renewed.updated, ['tokens']);
      assert.deepEqual([await read('short'), await read('long')], ['token-3', 'token-2']);
      assert.deepEqual((await fs.readdir(volume)).filter((n) => !n.startsWith('..')).sort(), ['long', 'short']);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the kubelet's atomic writer", () => {
  const file = (p: string, content: string, mode = 0o644) => ({ path: p, content: Buffer.from(content), mode });
  async function withDir(test: (dir: string) => Promise<void>): Promise<void> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-atomic-'));
    try {
      await test(dir);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  it('files live in a timestamped directory behind ..data; each top-level name links through ..data', () =>
    withDir(async (dir) => {
      assert.equal(await writeAtomically(dir, [file('a', '1'), file('conf/b.txt', '2', 0o400)], new Date(Date.UTC(2025, 4, 1, 10, 2, 3))), true);
      const data = await fs.readlink(path.join(dir, DATA_DIR_NAME));
      assert.match(data, /^\.\.2025_05_01_10_02_03\.\d+$/);
      assert.equal(await fs.readlink(path.join(dir, 'a')), '..data/a');
      assert.equal(await fs.readlink(path.join(dir, 'conf')), '..data/conf');
      assert.equal(await fs.readFile(path.join(dir, 'conf/b.txt'), 'utf8'), '2');
      assert.equal((await fs.stat(path.join(dir, 'conf/b.txt'))).mode & 0o7777, 0o400);
      assert.deepEqual((await fs.readdir(dir)).sort(), [DATA_DIR_NAME, data, 'a', 'conf'].sort());
    }));

  it('the same payload writes nothing; a change swaps ..data to a new directory, drops names that went and the old directory', () =>
    withDir(async (dir) => {
      await writeAtomically(dir, [file('a', '1'), file('b', '2')]);
      const first = await fs.readlink(path.join(dir, DATA_DIR_NAME));
      assert.equal(await writeAtomically(dir, [file('a', '1'), file('b', '2')]), false);
      assert.equal(await fs.readlink(path.join(dir, DATA_DIR_NAME)), first);
      // A reader holding the old file keeps reading what it opened.
      const held = await fs.open(path.join(dir, 'a'), 'r');
      try {
        assert.equal(await writeAtomically(dir, [file('a', 'one')]), true);
        const second = await fs.readlink(path.join(dir, DATA_DIR_NAME));
        assert.notEqual(second, first);
        assert.equal(await fs.readFile(path.join(dir, 'a'), 'utf8'), 'one');
        assert.deepEqual((await fs.readdir(dir)).sort(), [DATA_DIR_NAME, second, 'a'].sort());
        assert.equal((await held.readFile()).toString(), '1');
      } finally {
        await held.close();
      }
      assert.equal(await writeAtomically(dir, [file('a', 'one', 0o600)]), true, 'a mode change is a change');
    }));

  it('refuses paths that leave the volume or hide among its own names', () =>
    withDir(async (dir) => {
      for (const bad of ['../x', '/etc/passwd', 'a/../../x', '..data']) await assert.rejects(writeAtomically(dir, [file(bad, 'x')]), /invalid path/);
    }));
});

describe('Secret and ConfigMap volumes follow their source while the pod runs', () => {
  it('a changed Secret is written again, a missing one leaves the files and says why, a ConfigMap key that went is removed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-sync-'));
    try {
      let secret: Record<string, Buffer> | undefined = { password: Buffer.from('old') };
      let map: Record<string, Buffer> | undefined = { 'a.conf': Buffer.from('a'), 'b.conf': Buffer.from('b') };
      const sources = { secret: async () => secret, configMap: async () => map } as Partial<VolumeSources> as VolumeSources;
      const pod: V1Pod = {
        metadata: { name: 'p', namespace: 'ns', uid: 'u', labels: { tier: 'one' } },
        spec: {
          containers: [{ name: 'c' }],
          volumes: [
            { name: 'creds', secret: { secretName: 's' } },
            { name: 'conf', configMap: { name: 'c' } },
            { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          ],
        },
      };
      const volumes = await prepareVolumes(pod, dir, dir, sources, '127.0.0.9');
      const read = (volume: string, name: string) => fs.readFile(path.join(volumes.get(volume)!.path, name), 'utf8');
      const [mount] = await containerMounts({ name: 'c', volumeMounts: [{ name: 'creds', mountPath: '/etc/password', subPath: 'password' }] }, volumes);
      const boundAtStart = await fs.realpath(mount!.source);

      secret = { password: Buffer.from('new') };
      map = { 'a.conf': Buffer.from('a') };
      const changed = { ...pod, metadata: { ...pod.metadata, labels: { tier: 'two' } } };
      assert.deepEqual((await syncVolumes(changed, volumes, sources, '127.0.0.9')).updated, ['creds', 'conf', 'info']);
      assert.equal(await read('creds', 'password'), 'new');
      assert.deepEqual((await fs.readdir(volumes.get('conf')!.path)).filter((n) => !n.startsWith('..')), ['a.conf']);
      assert.equal(await read('info', 'labels'), 'tier="two"');
      // What a subPath mount bound at start is gone from the volume: it is never updated (as in Kubernetes).
      await assert.rejects(fs.access(boundAtStart));

      secret = undefined;
      const missing = await syncVolumes(changed, volumes, sources, '127.0.0.9');
      assert.deepEqual(missing.failed, [{ volume: 'creds', message: 'secret "s" not found' }]);
      assert.equal(await read('creds', 'password'), 'new');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('volume permissions and fsGroup, as kubelet sets them', () => {
  const HOUR = 3600_000;
  let issued = 0;
  const sources = {
    async secret() {
      return { password: Buffer.from('s3cret') };
    },
    async claim(namespace: string, name: string) {
      return { metadata: { name, namespace } };
    },
    async serviceAccountToken() {
      issued += 1;
      return { token: `token-${issued}`, expirationTimestamp: new Date(Date.now() + HOUR) };
    },
  } as Partial<VolumeSources> as VolumeSources;
  const mode = async (file: string) => (await fs.stat(file)).mode & 0o7777;
  const group = async (file: string) => (await fs.lstat(file)).gid;

  async function withDir(test: (dir: string) => Promise<void>): Promise<void> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-fsgroup-'));
    try {
      await test(dir);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  it('an emptyDir is world-writable whatever the umask', () =>
    withDir(async (dir) => {
      const pod: V1Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, spec: { containers: [{ name: 'c' }], volumes: [{ name: 'scratch', emptyDir: {} }] } };
      const volumes = await prepareVolumes(pod, path.join(dir, 'pod'), dir, sources, '127.0.0.9');
      assert.equal(await mode(volumes.get('scratch')!.path), 0o777);
    }));

  it('with fsGroup: emptyDir and claim (existing contents too) get the group, g+rw(x) and setgid; Secret and token files the group and g+r; a token the one runAsUser', () =>
    withDir(async (dir) => {
      const storage = claimDir(dir, 'ns', 'data');
      await fs.mkdir(path.join(storage, 'old/deeper'), { recursive: true });
      await fs.writeFile(path.join(storage, 'old/file'), 'x', { mode: 0o600 });
      await fs.chmod(path.join(storage, 'old/file'), 0o600);
      await fs.chmod(path.join(storage, 'old'), 0o700);
      await fs.symlink('/etc/passwd', path.join(storage, 'link'));
      const pod: V1Pod = {
        metadata: { name: 'p', namespace: 'ns', uid: 'u' },
        spec: {
          securityContext: { fsGroup: 3456, runAsUser: 1234 },
          containers: [{ name: 'c' }],
          volumes: [
            { name: 'scratch', emptyDir: {} },
            { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
            { name: 'creds', secret: { secretName: 's', defaultMode: 0o400 } },
            { name: 'token', projected: { defaultMode: 0o600, sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }] } },
          ],
        },
      };
      const etcPasswdGroup = await group('/etc/passwd');
      const volumes = await prepareVolumes(pod, path.join(dir, 'pod'), dir, sources, '127.0.0.9');
      const scratch = volumes.get('scratch')!.path;
      assert.deepEqual([await group(scratch), await mode(scratch)], [3456, 0o2777]);
      assert.deepEqual([await group(storage), await mode(storage) & 0o2070], [3456, 0o2070]);
      assert.deepEqual([await group(path.join(storage, 'old')), await mode(path.join(storage, 'old'))], [3456, 0o2770]);
      assert.deepEqual([await group(path.join(storage, 'old/deeper')), await mode(path.join(storage, 'old/deeper')) & 0o2070], [3456, 0o2070]);
      assert.deepEqual([await group(path.join(storage, 'old/file')), await mode(path.join(storage, 'old/file'))], [3456, 0o660]);
      assert.equal(await group(path.join(storage, 'link')), 3456, 'the link itself');
      assert.equal(await group('/etc/passwd'), etcPasswdGroup, 'not what it points to');
      const secret = path.join(volumes.get('creds')!.path, 'password');
      assert.deepEqual([await group(secret), await mode(secret)], [3456, 0o440]);
      const token = volumes.get('token')!;
      const tokenFile = path.join(token.path, 'token');
      const stat = await fs.stat(tokenFile);
      assert.deepEqual([stat.uid, stat.gid, stat.mode & 0o7777], [1234, 3456, 0o640]);

      // A renewed token keeps its owner, group and mode.
      await syncVolumes(pod, volumes, sources, '127.0.0.9', Date.now() + HOUR);
      const renewed = await fs.stat(tokenFile);
      assert.notEqual(renewed.ino, stat.ino, 'replaced');
      assert.deepEqual([renewed.uid, renewed.gid, renewed.mode & 0o7777], [1234, 3456, 0o640]);
      assert.deepEqual([await group(path.join(token.path, DATA_DIR_NAME)), await group(tokenFile)], [3456, 3456]);

      // A missing subPath is made with the volume root's permissions.
      const [mount] = await containerMounts({ name: 'c', volumeMounts: [{ name: 'data', mountPath: '/data', subPath: 'sub/dir' }] }, volumes);
      assert.deepEqual([await group(mount!.source), await mode(mount!.source)], [3456, await mode(storage)]);
    }));

  it('fsGroupChangePolicy OnRootMismatch: nothing is changed when the root already matches', () =>
    withDir(async (dir) => {
      await fs.mkdir(path.join(dir, 'sub'));
      await fs.chmod(path.join(dir, 'sub'), 0o700);
      await fs.chown(dir, 0, 3456);
      await fs.chmod(dir, 0o2770);
      await setVolumeOwnership(dir, 3456, false, 'OnRootMismatch');
      assert.deepEqual([await group(path.join(dir, 'sub')), await mode(path.join(dir, 'sub'))], [0, 0o700]);
      await fs.chmod(dir, 0o770);
      await setVolumeOwnership(dir, 3456, false, 'OnRootMismatch');
      assert.deepEqual([await group(path.join(dir, 'sub')), await mode(path.join(dir, 'sub'))], [3456, 0o2770]);
    }));
});
