// A pull never chooses the code that runs: with a git source (NIXERY_PKGS_REPO) the image tag may
// name a commit, and anyone who can open a pull request has a commit in the repository (GitHub
// keeps it under refs/pull/N/head). Such a commit is served only when a trusted branch or tag
// (NIXERY_PKGS_REPO_TRUSTED_REFS; default every branch and tag) reaches it. The pull request's
// package set here leaves a trace of anything done with it: evaluating it adds a store path named
// with a nonce, building its `hello` writes a canary file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, runOk } from '@nixery/test-support';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const OFFLINE_SET = path.join(REPO_ROOT, 'nix/offline');

/** A nixpkgs-shaped set: the offline set with `hello` saying `greeting`. */
function packageSet(greeting: string): string {
  return `{ system ? builtins.currentSystem, ... }:
let base = import ${OFFLINE_SET} { inherit system; };
in base // { hello = base.writeShellScriptBin "hello" "echo ${greeting}"; }
`;
}

/** What a pull request could propose: code that runs when the registry evaluates or builds it. */
function hostileSet(nonce: string, canary: string): string {
  return `{ system ? builtins.currentSystem, ... }:
let
  base = import ${OFFLINE_SET} { inherit system; };
  evaluated = builtins.toFile "nixery-canary-${nonce}" "the registry evaluated a pull request";
in
builtins.seq evaluated (base // {
  hello = base.runCommand "hello-${nonce}" { } ''
    echo "the registry built a pull request" > ${canary}
    mkdir -p $out/bin
    printf '#!/bin/sh\\necho pwned\\n' > $out/bin/hello
    chmod +x $out/bin/hello
  '';
})
`;
}

interface ErrorBody {
  errors: { code: string; message: string }[];
}

describe('git source: only commits a trusted branch or tag reaches are served', () => {
  let work: string;
  let repo: string;
  let canary: string;
  let nonce: string;
  const commits: Record<string, string> = {};
  const registries: RegistryProcess[] = [];

  const git = async (...args: string[]) =>
    (await runOk('git', ['-C', repo, '-c', 'user.email=e2e@example.org', '-c', 'user.name=e2e', ...args])).stdout.trim();

  async function commitSet(name: string, content: string): Promise<string> {
    await fs.writeFile(path.join(repo, 'default.nix'), content);
    await git('add', 'default.nix');
    await git('commit', '-q', '-m', name);
    commits[name] = await git('rev-parse', 'HEAD');
    return commits[name];
  }

  before(async () => {
    work = await tempDir('nixery-e2e-git-trust-');
    repo = path.join(work, 'pkgs');
    canary = path.join(work, 'canary');
    nonce = randomUUID();
    await fs.mkdir(repo);
    await git('init', '-q', '-b', 'main');
    // main: old → head. `old` is on main but not its head.
    await commitSet('old', packageSet('hello from an old commit of main'));
    await commitSet('head', packageSet('hello from the head of main'));
    // A commit only a tag reaches: its branch (off `old`) is gone.
    await git('checkout', '-q', '-b', 'gone', commits.old!);
    await commitSet('tagged', packageSet('hello from a tagged commit'));
    await git('tag', '-a', 'release', '-m', 'a release whose branch was deleted');
    // A pull request: a commit only refs/pull/1/head reaches, as GitHub keeps it.
    await git('checkout', '-q', 'main');
    await git('checkout', '-q', '-b', 'proposal');
    await commitSet('pull', hostileSet(nonce, canary));
    await git('update-ref', 'refs/pull/1/head', commits.pull!);
    await git('checkout', '-q', 'main');
    await git('branch', '-q', '-D', 'gone', 'proposal');
    // A bare copy with every ref (refs/pull/* too), reached over file:// as a remote is.
    await runOk('git', ['clone', '-q', '--mirror', repo, path.join(work, 'remote.git')]);
  });

  after(async () => {
    for (const r of registries) {
      await r.stop();
      await fs.rm(r.storagePath, { recursive: true, force: true });
    }
    await fs.rm(work, { recursive: true, force: true });
  });

  async function start(url: string, env: Record<string, string> = {}): Promise<RegistryProcess> {
    const r = await startRegistry({ env: { NIXERY_PKGS_REPO: url, NIX_CONFIG: 'substituters =', ...env } });
    registries.push(r);
    return r;
  }

  async function helloSays(r: RegistryProcess, tag: string): Promise<string> {
    const rootfs = await pullAndUnpack(r.host, `hello:${tag}`, path.join(work, `pull-${r.port}-${tag}`));
    return (await runInRoot(rootfs, ['/bin/hello'])).trim();
  }

  async function assertNoTrace(): Promise<void> {
    await assert.rejects(fs.access(canary), { code: 'ENOENT' }, 'the pull request was built');
    const store = await fs.readdir('/nix/store');
    assert.deepEqual(store.filter((p) => p.includes(nonce)), [], 'the pull request was evaluated');
  }

  async function assertRefused(r: RegistryProcess, tag: string, mentions: RegExp): Promise<void> {
    for (const method of ['HEAD', 'GET']) {
      const response = await fetch(`${r.url}/v2/hello/manifests/${tag}`, { method });
      assert.equal(response.status, 404, `${method} ${tag}\n${r.logs().slice(-3000)}`);
      if (method === 'GET') {
        const body = (await response.json()) as ErrorBody;
        assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
        assert.match(body.errors[0]!.message, mentions);
      }
    }
  }

  for (const where of ['work tree', 'bare repository over file://'] as const) {
    it(`${where}: a pull request's commit is 404 and never evaluated; older, tagged and named commits are served`, async () => {
      const r = await start(where === 'work tree' ? repo : `file://${path.join(work, 'remote.git')}`);
      await assertRefused(r, commits.pull!, new RegExp(`${commits.pull}.*not reachable from a trusted branch or tag`));
      // Asked again once the registry's view of the repository is surely fresh: still refused.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await assertRefused(r, commits.pull!, /not reachable from a trusted branch or tag/);
      await assertNoTrace();

      assert.equal(await helloSays(r, commits.old!), 'hello from an old commit of main');
      assert.equal(await helloSays(r, commits.tagged!), 'hello from a tagged commit');
      assert.equal(await helloSays(r, 'release'), 'hello from a tagged commit');
      assert.equal(await helloSays(r, 'latest'), 'hello from the head of main');
      await assertNoTrace();
    });
  }

  it('NIXERY_PKGS_REPO_TRUSTED_REFS narrows the trust: only tags, then a branch or commit only a branch reaches is 404', async () => {
    const r = await start(repo, { NIXERY_PKGS_REPO_TRUSTED_REFS: 'refs/tags/*' });
    assert.equal(await helloSays(r, 'release'), 'hello from a tagged commit');
    assert.equal(await helloSays(r, commits.tagged!), 'hello from a tagged commit');
    await assertRefused(r, commits.head!, /not reachable from a trusted branch or tag/);
    await assertRefused(r, 'main', /main/);
    await assertRefused(r, commits.pull!, /not reachable from a trusted branch or tag/);
    await assertNoTrace();
  });
});
