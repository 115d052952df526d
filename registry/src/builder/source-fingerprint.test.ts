import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { outputOf } from '../test-support/programs.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { ChannelUnavailableError, fingerprintSource, hashTree } from './source-fingerprint.ts';

const tempDir = tempDirs('nixery-fingerprint-');

describe('path sources are fingerprinted by content', () => {
  it('changes with file content, names, executable bits and link targets, and only then', async () => {
    const dir = await tempDir();
    await fs.mkdir(path.join(dir, 'pkgs'));
    await fs.writeFile(path.join(dir, 'default.nix'), 'a');
    await fs.writeFile(path.join(dir, 'pkgs', 'x.nix'), 'x');
    await fs.symlink('x.nix', path.join(dir, 'pkgs', 'link'));
    const original = await hashTree(dir);
    assert.equal(await hashTree(dir), original, 'stable');
    await fs.utimes(path.join(dir, 'default.nix'), new Date(0), new Date(0));
    assert.equal(await hashTree(dir), original, 'times do not matter');

    const changes: [string, () => Promise<void>, () => Promise<void>][] = [
      ['content', () => fs.writeFile(path.join(dir, 'default.nix'), 'b'), () => fs.writeFile(path.join(dir, 'default.nix'), 'a')],
      ['mode', () => fs.chmod(path.join(dir, 'pkgs', 'x.nix'), 0o755), () => fs.chmod(path.join(dir, 'pkgs', 'x.nix'), 0o644)],
      ['new file', () => fs.writeFile(path.join(dir, 'pkgs', 'y.nix'), ''), () => fs.rm(path.join(dir, 'pkgs', 'y.nix'))],
      [
        'link target',
        async () => {
          await fs.rm(path.join(dir, 'pkgs', 'link'));
          await fs.symlink('y.nix', path.join(dir, 'pkgs', 'link'));
        },
        async () => {
          await fs.rm(path.join(dir, 'pkgs', 'link'));
          await fs.symlink('x.nix', path.join(dir, 'pkgs', 'link'));
        },
      ],
    ];
    for (const [what, change, undo] of changes) {
      await change();
      assert.notEqual(await hashTree(dir), original, what);
      await undo();
      assert.equal(await hashTree(dir), original, `${what} undone`);
    }
  });

  it('ignores a .git directory at the top', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'default.nix'), 'a');
    const before = await hashTree(dir);
    await fs.mkdir(path.join(dir, '.git'));
    await fs.writeFile(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main');
    assert.equal(await hashTree(dir), before);
  });
});

describe('channel sources are fingerprinted by the tarball validator', () => {
  let server: http.Server;
  let base: string;
  const headers: Record<string, Record<string, string>> = {
    '/c/moving.tar.gz': { ETag: '"v1"' },
    '/c/dated.tar.gz': { 'Last-Modified': 'Wed, 25 Nov 2026 10:00:00 GMT' },
    '/c/opaque.tar.gz': {},
  };
  before(async () => {
    server = http.createServer((req, res) => {
      const h = headers[req.url ?? ''];
      if (!h) return void res.writeHead(404).end();
      res.writeHead(200, { ...h, 'Content-Length': '10' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/c`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('follows the ETag, so a moved channel is a new key', async () => {
    const source = { type: 'channel' as const, channel: 'moving', baseUrl: base };
    const first = await fingerprintSource(source, 'latest', { timeoutSeconds: 5 });
    headers['/c/moving.tar.gz'] = { ETag: '"v2"' };
    const second = await fingerprintSource(source, 'latest', { timeoutSeconds: 5 });
    assert.ok(first.key && second.key);
    assert.notEqual(first.key, second.key);
  });

  it('falls back to Last-Modified, and gives no key (no caching) without validators', async () => {
    assert.match((await fingerprintSource({ type: 'channel', channel: 'dated', baseUrl: base }, 'x', { timeoutSeconds: 5 })).key ?? '', /modified:/);
    assert.equal((await fingerprintSource({ type: 'channel', channel: 'opaque', baseUrl: base }, 'x', { timeoutSeconds: 5 })).key, undefined);
  });

  it('needs no request for a channel pinned to a commit, and fails clearly for a missing channel', async () => {
    const rev = 'a'.repeat(40);
    const pinned = await fingerprintSource({ type: 'channel', channel: rev, baseUrl: 'http://127.0.0.1:9/none' }, 'x', { timeoutSeconds: 5 });
    assert.equal(pinned.key, `channel:http://127.0.0.1:9/none/${rev}.tar.gz`);
    await assert.rejects(fingerprintSource({ type: 'channel', channel: 'gone', baseUrl: base }, 'x', { timeoutSeconds: 5 }), ChannelUnavailableError);
  });
});

describe('git sources are fingerprinted by the commit the tag names', () => {
  it('resolves branches, tags and latest to commits', async () => {
    const repo = await tempDir();
    const git = (...args: string[]) => outputOf('git', ['-C', repo, ...args]).trim();
    git('init', '-q', '-b', 'main');
    git('-c', 'user.email=t@example.org', '-c', 'user.name=t', 'commit', '-q', '--allow-empty', '-m', 'one');
    const one = git('rev-parse', 'HEAD');
    git('tag', 'v1');
    git('-c', 'user.email=t@example.org', '-c', 'user.name=t', 'commit', '-q', '--allow-empty', '-m', 'two');
    const two = git('rev-parse', 'HEAD');
    const source = { type: 'git' as const, url: repo };
    assert.equal((await fingerprintSource(source, 'v1', { timeoutSeconds: 10 })).gitSpec?.rev, one);
    assert.equal((await fingerprintSource(source, 'main', { timeoutSeconds: 10 })).gitSpec?.rev, two);
    const latest = await fingerprintSource(source, 'latest', { timeoutSeconds: 10 });
    assert.equal(latest.gitSpec?.rev, two);
    assert.equal(latest.key, `git:${repo}#${two}`);
  });
});
