// Every package source Nixery has, through the registry: a git repository (the tag is the git
// ref), a channel (a tarball from a configurable base URL) and a local path, all local so
// nothing reaches the network. A moved source is looked at again within seconds, not at once
// (the registry remembers a source's fingerprint for a moment): those checks poll, with a bound.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { eventually, REPO_ROOT, runOk } from '@nixery/test-support';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const OFFLINE_SET = path.join(REPO_ROOT, 'nix/offline');

/** A nixpkgs-shaped set: the offline set with `hello` saying `greeting`. */
function packageSet(greeting: string): string {
  return `{ system ? builtins.currentSystem, ... }:
let base = import ${OFFLINE_SET} { inherit system; };
in base // { hello = base.writeShellScriptBin "hello" "echo ${greeting}"; }
`;
}

const dirs: string[] = [];
const registries: RegistryProcess[] = [];
after(async () => {
  for (const r of registries) await r.stop();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** Generous next to the registry's 5 s bound on a stale fingerprint: the new image is also built. */
const MOVE_SEEN_WITHIN_MS = 60_000;

async function manifestDigest(r: RegistryProcess, tag: string): Promise<string> {
  const response = await fetch(`${r.url}/v2/hello/manifests/${tag}`, { method: 'HEAD' });
  assert.equal(response.status, 200);
  return response.headers.get('docker-content-digest')!;
}

/** Polls until the manifest of hello:tag is no longer `before`, i.e. the registry rebuilt from the moved source. */
function rebuiltFrom(r: RegistryProcess, tag: string, before: string): Promise<string> {
  return eventually(
    `hello:${tag} to be rebuilt from the moved source`,
    async () => {
      const digest = await manifestDigest(r, tag);
      return digest === before ? undefined : digest;
    },
    MOVE_SEEN_WITHIN_MS,
    250,
  );
}

async function helloSays(r: RegistryProcess, tag: string, work: string): Promise<string> {
  const rootfs = await pullAndUnpack(r.host, `hello:${tag}`, path.join(work, `pull-${tag}-${Date.now()}`));
  return (await runInRoot(rootfs, ['/bin/hello'])).trim();
}

describe('package sources', () => {
  it('git: the image tag selects the tag, branch or commit, and latest is the default branch', async () => {
    const work = await tempDir('nixery-e2e-git-');
    dirs.push(work);
    const repo = path.join(work, 'pkgs');
    await fs.mkdir(repo);
    const git = (...args: string[]) => runOk('git', ['-C', repo, '-c', 'user.email=e2e@example.org', '-c', 'user.name=e2e', ...args]);
    await git('init', '-q', '-b', 'main');
    await fs.writeFile(path.join(repo, 'default.nix'), packageSet('hello from v1'));
    await git('add', '.');
    await git('commit', '-q', '-m', 'v1');
    await git('tag', 'v1');
    const v1 = (await git('rev-parse', 'HEAD')).stdout.trim();
    await fs.writeFile(path.join(repo, 'default.nix'), packageSet('hello from v2'));
    await git('commit', '-q', '-am', 'v2');
    await git('tag', '-a', 'v2', '-m', 'annotated');
    await git('checkout', '-q', '-b', 'experimental');
    await fs.writeFile(path.join(repo, 'default.nix'), packageSet('hello from a branch'));
    await git('commit', '-q', '-am', 'branch');
    await git('checkout', '-q', 'main');

    const r = await startRegistry({ env: { NIXERY_PKGS_REPO: repo, NIX_CONFIG: 'substituters =' } });
    registries.push(r);
    dirs.push(r.storagePath);
    assert.equal(await helloSays(r, 'v1', work), 'hello from v1');
    assert.equal(await helloSays(r, 'v2', work), 'hello from v2');
    assert.equal(await helloSays(r, 'experimental', work), 'hello from a branch');
    assert.equal(await helloSays(r, v1, work), 'hello from v1');
    assert.equal(await helloSays(r, 'latest', work), 'hello from v2');

    // The default branch moves: latest is rebuilt from the new commit.
    const v2Digest = await manifestDigest(r, 'latest');
    await fs.writeFile(path.join(repo, 'default.nix'), packageSet('hello from v3'));
    await git('commit', '-q', '-am', 'v3');
    await rebuiltFrom(r, 'latest', v2Digest);
    assert.equal(await helloSays(r, 'latest', work), 'hello from v3');

    const missing = await fetch(`${r.url}/v2/hello/manifests/no-such-ref`);
    assert.equal(missing.status, 404);
    const body = (await missing.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
    assert.match(body.errors[0]!.message, /no-such-ref/);
  });

  describe('channel', () => {
    let server: http.Server;
    let baseUrl: string;
    let work: string;
    let tarball: Buffer;
    let etag = '"1"';

    async function publish(greeting: string, version: string): Promise<void> {
      const tree = path.join(work, `tree-${version}`);
      await fs.mkdir(path.join(tree, 'nixpkgs-test'), { recursive: true });
      await fs.writeFile(path.join(tree, 'nixpkgs-test', 'default.nix'), packageSet(greeting));
      const file = path.join(work, `channel-${version}.tar.gz`);
      await runOk('tar', ['-czf', file, '-C', tree, 'nixpkgs-test']);
      tarball = await fs.readFile(file);
      etag = `"${version}"`;
    }

    before(async () => {
      work = await tempDir('nixery-e2e-channel-');
      dirs.push(work);
      await publish('hello from the channel', '1');
      server = http.createServer((req, res) => {
        if (req.url !== '/archive/test-channel.tar.gz') return void res.writeHead(404).end();
        if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { ETag: etag }).end();
        res.writeHead(200, { 'Content-Type': 'application/gzip', 'Content-Length': tarball.length, ETag: etag });
        res.end(req.method === 'HEAD' ? undefined : tarball);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/archive`;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('builds from the channel tarball, and from the new one once the channel moved', async () => {
      const r = await startRegistry({
        env: { NIXERY_CHANNEL: 'test-channel', NIXERY_CHANNEL_BASE_URL: baseUrl, NIX_CONFIG: 'substituters =' },
      });
      registries.push(r);
      dirs.push(r.storagePath);
      assert.equal(await helloSays(r, 'latest', work), 'hello from the channel');
      const before = await manifestDigest(r, 'latest');
      await publish('hello from the moved channel', '2');
      await rebuiltFrom(r, 'latest', before);
      assert.equal(await helloSays(r, 'latest', work), 'hello from the moved channel');
    });
  });

  it('path: a file edited under NIXERY_PKGS_PATH is picked up', async () => {
    const work = await tempDir('nixery-e2e-path-');
    dirs.push(work);
    const set = path.join(work, 'pkgs');
    await fs.mkdir(set);
    await fs.writeFile(path.join(set, 'default.nix'), packageSet('hello from the path'));
    const r = await startRegistry({ env: { NIXERY_PKGS_PATH: set, NIX_CONFIG: 'substituters =' } });
    registries.push(r);
    dirs.push(r.storagePath);
    assert.equal(await helloSays(r, 'latest', work), 'hello from the path');
    const before = await manifestDigest(r, 'latest');
    assert.equal(await manifestDigest(r, 'latest'), before, 'an unchanged source is served from the cache');

    await fs.writeFile(path.join(set, 'default.nix'), packageSet('hello from the edited path'));
    await rebuiltFrom(r, 'latest', before);
    assert.equal(await helloSays(r, 'latest', work), 'hello from the edited path');
  });
});
