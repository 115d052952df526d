import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { projectKeys, refreshTokens, tokenRefreshAt, VolumeError, type PreparedVolume, type TokenRequest, type VolumeSources } from './volumes.ts';

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

