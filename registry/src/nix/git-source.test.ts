import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GitRefNotFoundError, NixEvaluationError, realiseImage, resolveGitRef } from './index.ts';
import { pickRef } from './git-ref.ts';
import { offlineSetPath, testOptions } from './test-support.ts';
import { outputOf } from '../test-support/programs.ts';

// A package set kept in git, as NIXERY_PKGS_REPO points at: `greeting`
// changes from commit to commit, so its store path tells which commit Nix used.
function packageSet(version: string): string {
  return `{ system ? builtins.currentSystem, ... }:
let base = import ${JSON.stringify(offlineSetPath)} { inherit system; }; in
{
  inherit (base) hello;
  greeting = base.runCommand "greeting-${version}" { } "mkdir $out; echo ${version} > $out/version";
}
`;
}

describe('a git package source', () => {
  let dir: string;
  let repo: string;
  let bare: string;
  const commits: Record<string, string> = {};

  const git = (...args: string[]) =>
    outputOf('git', ['-C', repo, '-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args]).trim();
  const commit = (version: string) => {
    fs.writeFileSync(path.join(repo, 'default.nix'), packageSet(version));
    git('add', 'default.nix');
    git('commit', '--quiet', '-m', version);
    commits[version] = git('rev-parse', 'HEAD');
  };

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-git-source-'));
    repo = path.join(dir, 'repo');
    fs.mkdirSync(repo);
    git('init', '--quiet', '--initial-branch=main');
    commit('one');
    git('tag', '--annotate', 'v1', '--message', 'release one');
    commit('two');
    git('checkout', '--quiet', '-b', 'feature');
    commit('three');
    git('checkout', '--quiet', 'main');
    git('tag', 'light', commits.one!);
    // Uncommitted work must not leak into `latest`: Nix would use a dirty work tree if asked without a ref.
    fs.writeFileSync(path.join(repo, 'default.nix'), packageSet('dirty'));
    // A bare copy takes Nix's path for remote repositories (fetch into its cache) rather than the local one.
    bare = path.join(dir, 'bare.git');
    outputOf('git', ['clone', '--quiet', '--bare', repo, bare]);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function greetingFor(url: string, ref: string): Promise<string> {
    const image = await realiseImage(
      { source: { type: 'git', url }, ref, packages: ['greeting'], system: 'x86_64-linux' },
      testOptions(),
    );
    const out = image.packages[0]!.outPaths[0]!;
    return fs.readFileSync(path.join(out, 'version'), 'utf8').trim();
  }

  for (const where of ['work tree', 'bare repository over file://'] as const) {
    it(`resolves latest, a tag, a branch and commits in a ${where}`, async () => {
      const url = where === 'work tree' ? repo : `file://${bare}`;
      const cases: [string, string][] = [
        ['latest', 'two'],
        ['v1', 'one'],
        ['light', 'one'],
        ['feature', 'three'],
        ['main', 'two'],
        [commits.one!, 'one'],
        // Not on the default branch: Nix has to look beyond it.
        [commits.three!, 'three'],
      ];
      for (const [ref, expected] of cases) {
        assert.equal(await greetingFor(url, ref), expected, `ref ${ref}`);
      }
    });
  }

  it('evaluates an already resolved ref without asking the remote again', async () => {
    const spec = await resolveGitRef(repo, 'feature', { timeoutSeconds: 30 });
    assert.deepEqual(spec, { url: repo, ref: 'refs/heads/feature', rev: commits.three });
    const image = await realiseImage(
      // The tag would say `main`; the resolved spec wins.
      { source: { type: 'git', url: repo }, ref: 'main', gitSpec: spec, packages: ['greeting'], system: 'x86_64-linux' },
      testOptions(),
    );
    assert.equal(fs.readFileSync(path.join(image.packages[0]!.outPaths[0]!, 'version'), 'utf8').trim(), 'three');
  });

  it('has Nix fetch only the trusted ref it is given, never every ref of the repository', async () => {
    // A pull request's commit, as GitHub keeps it, in a copy Nix has not fetched before.
    const pull = git('commit-tree', '-p', commits.two!, '-m', 'pull', `${commits.three}^{tree}`);
    git('update-ref', 'refs/pull/1/head', pull);
    const remote = path.join(dir, 'with-pull.git');
    outputOf('git', ['clone', '--quiet', '--mirror', repo, remote]);
    const realise = (gitSpec: { url: string; ref: string; rev: string }) =>
      realiseImage({ source: { type: 'git', url: gitSpec.url }, gitSpec, packages: ['greeting'], system: 'x86_64-linux' }, testOptions());
    await assert.rejects(realise({ url: `file://${remote}`, ref: 'refs/heads/main', rev: pull }), NixEvaluationError);
    // load-source.nix refuses a bare commit rather than fetch every ref to find it.
    await assert.rejects(realise({ url: `file://${remote}`, ref: pull, rev: pull }), (error: unknown) => {
      assert.ok(error instanceof NixEvaluationError);
      assert.match(error.logTail, /only with the trusted ref that reaches it/);
      return true;
    });
  });

  it('says which ref does not exist', async () => {
    await assert.rejects(greetingFor(repo, 'no-such-branch'), (error: unknown) => {
      assert.ok(error instanceof GitRefNotFoundError);
      assert.ok(error instanceof NixEvaluationError);
      assert.equal(error.ref, 'no-such-branch');
      return true;
    });
  });
});

describe('pickRef', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);
  const c = 'c'.repeat(40);

  it('takes the default branch and its commit for latest', () => {
    assert.deepEqual(pickRef('latest', `ref: refs/heads/main\tHEAD\n${a}\tHEAD\n`), { ref: 'refs/heads/main', rev: a });
    assert.deepEqual(pickRef('', `${a}\tHEAD\n`), { rev: a });
  });

  it('peels annotated tags and prefers a tag to a branch of the same name, as git does', () => {
    const out = `${a}\trefs/heads/x\n${b}\trefs/tags/x\n${c}\trefs/tags/x^{}\n`;
    assert.deepEqual(pickRef('x', out), { ref: 'refs/tags/x', rev: c });
    assert.deepEqual(pickRef('x', `${a}\trefs/heads/x\n`), { ref: 'refs/heads/x', rev: a });
  });

  it('does not take a ref that merely ends with the name', () => {
    assert.equal(pickRef('x', `${a}\trefs/heads/feature/x\n`), null);
  });
});
