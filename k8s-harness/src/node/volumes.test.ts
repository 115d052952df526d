import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { claimDir, containerMounts, prepareVolumes, projectKeys, refreshTokens, setVolumeOwnership, tokenRefreshAt, VolumeError, type PreparedVolume, type TokenRequest, type VolumeSources } from './volumes.ts';

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

  it('a due token is asked for again and its file replaced; the others wait', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-token-'));
    try {
      const asked: Array<[string, string, TokenRequest]> = [];
      const sources = {
        async serviceAccountToken(namespace: string, account: string, request: TokenRequest) {
          asked.push([namespace, account, request]);
          return { token: 'new', expirationTimestamp: new Date(10 * HOUR) };
        },
      } as Partial<VolumeSources> as VolumeSources;
      const request: TokenRequest = { audiences: [], expirationSeconds: 3600, pod: { name: 'p', uid: 'u' } };
      const due = { file: path.join(dir, 'due'), mode: 0o644, serviceAccount: 'sa', request, issuedAt: 0, expiresAt: HOUR };
      const fresh = { file: path.join(dir, 'fresh'), mode: 0o644, serviceAccount: 'sa', request, issuedAt: HOUR, expiresAt: 3 * HOUR };
      await fs.writeFile(due.file, 'old');
      await fs.writeFile(fresh.file, 'old');
      const volumes: PreparedVolume[] = [{ path: dir, readOnly: true, tokens: [due, fresh] }];
      const next = await refreshTokens(volumes, 'ns', sources, HOUR);
      assert.deepEqual(asked, [['ns', 'sa', request]]);
      assert.equal(await fs.readFile(due.file, 'utf8'), 'new');
      assert.equal(await fs.readFile(fresh.file, 'utf8'), 'old');
      assert.deepEqual(await fs.readdir(dir), ['due', 'fresh']);
      assert.equal(next, tokenRefreshAt(fresh));
      assert.equal(await refreshTokens([{ path: dir, readOnly: true }], 'ns', sources), undefined);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});


describe('volume permissions and fsGroup, as kubelet sets them', () => {
  const HOUR = 3600_000;
  const sources = {
    async secret() {
      return { password: Buffer.from('s3cret') };
    },
    async claim(namespace: string, name: string) {
      return { metadata: { name, namespace } };
    },
    async serviceAccountToken() {
      return { token: 'token', expirationTimestamp: new Date(Date.now() + HOUR) };
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
      await refreshTokens([token], 'ns', sources, Date.now() + HOUR);
      const renewed = await fs.stat(tokenFile);
      assert.notEqual(renewed.ino, stat.ino, 'replaced');
      assert.deepEqual([renewed.uid, renewed.gid, renewed.mode & 0o7777], [1234, 3456, 0o640]);

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
