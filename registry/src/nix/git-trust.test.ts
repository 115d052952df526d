// Which commits of a git source the registry serves, with real git and no Nix: a commit only when
// a trusted ref reaches it (never one only a pull request's ref has), names only when they resolve
// to a trusted ref, answers that follow the repository within the stated times, and git calls to
// the remote that are bounded in number and in time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { GitRefNotFoundError, GitRefUntrustedError, NixTimeoutError } from './errors.ts';
import { resolveGitRef } from './git-ref.ts';
import { GIT_REMOTE_CONCURRENCY, MIRROR_FRESH_MS, MIRROR_MAX_STALE_MS, mirrorRefspecs } from './git-trust.ts';
import { outputOf, runSync } from '../test-support/programs.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';

const tempDir = tempDirs('nixery-git-trust-');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('commits a trusted ref reaches, and no others', () => {
  let repo: string;
  let mirrorRoot: string;
  const c: Record<string, string> = {};
  const git = (...args: string[]) => outputOf('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args]).trim();
  const commit = (name: string) => {
    git('commit', '-q', '--allow-empty', '-m', name);
    c[name] = git('rev-parse', 'HEAD');
  };
  const resolve = (tag: string, trustedRefs?: string[]) =>
    resolveGitRef(repo, tag, { timeoutSeconds: 30, mirrorRoot, ...(trustedRefs ? { trustedRefs } : {}) });
  const untrusted = (what: RegExp) => (error: unknown) => {
    assert.ok(error instanceof GitRefUntrustedError, String(error));
    assert.ok(error instanceof GitRefNotFoundError, 'reported as a ref that does not exist');
    assert.match(error.message, what);
    return true;
  };

  before(async () => {
    repo = await tempDir();
    mirrorRoot = await tempDir();
    git('init', '-q', '-b', 'main');
    commit('old');
    commit('head');
    // A commit only a tag reaches: its branch (off `old`) is gone.
    git('checkout', '-q', '-b', 'gone', c.old!);
    commit('tagged');
    git('tag', '-a', 'release', '-m', 'release');
    git('checkout', '-q', 'main');
    git('checkout', '-q', '-b', 'proposal');
    commit('pull');
    git('update-ref', 'refs/pull/1/head', c.pull!);
    git('update-ref', 'refs/notes/other', c.pull!);
    git('checkout', '-q', 'main');
    git('branch', '-q', '-D', 'gone', 'proposal');
  });

  it('serves a commit a branch reaches (not its head) and one only a tag reaches, with that ref for Nix', async () => {
    assert.deepEqual(await resolve(c.old!), { url: repo, ref: 'refs/heads/main', rev: c.old });
    assert.deepEqual(await resolve(c.head!), { url: repo, ref: 'refs/heads/main', rev: c.head });
    assert.deepEqual(await resolve(c.tagged!), { url: repo, ref: 'refs/tags/release', rev: c.tagged });
  });

  it("refuses a commit only a pull request's ref (or another ref) reaches, and a commit the repository lacks", async () => {
    await assert.rejects(resolve(c.pull!), untrusted(new RegExp(`commit ${c.pull} is not reachable from a trusted branch or tag .*refs/heads/\\*, refs/tags/\\*`)));
    await assert.rejects(resolve('0123456789abcdef0123456789abcdef01234567'), untrusted(/is not reachable/));
  });

  it('keeps only the trusted refs in its mirror: the pull request was never fetched', async () => {
    const mirrors = fs.readdirSync(mirrorRoot).filter((d) => d.endsWith('.git'));
    assert.equal(mirrors.length, 1);
    const mirror = path.join(mirrorRoot, mirrors[0]!);
    const refs = outputOf('git', [`--git-dir=${mirror}`, 'for-each-ref', '--format=%(refname)']).trim().split('\n');
    assert.deepEqual(refs.sort(), ['refs/heads/main', 'refs/tags/release']);
    assert.notEqual(runSync('git', [`--git-dir=${mirror}`, 'cat-file', '-e', `${c.pull}^{commit}`]).status, 0);
  });

  it('resolves names only to trusted refs, and a trusted branch wins over an untrusted tag of the same name', async () => {
    const tagsOnly = ['refs/tags/*'];
    assert.deepEqual(await resolve('release', tagsOnly), { url: repo, ref: 'refs/tags/release', rev: c.tagged });
    await assert.rejects(resolve('main', tagsOnly), untrusted(/refs\/heads\/main of .* is not a trusted branch or tag \(trusted refs: refs\/tags\/\*\)/));
    await assert.rejects(resolve('latest', tagsOnly), untrusted(/refs\/heads\/main/));
    await assert.rejects(resolve(c.head!, tagsOnly), untrusted(/is not reachable/));
    assert.deepEqual(await resolve(c.old!, tagsOnly), { url: repo, ref: 'refs/tags/release', rev: c.old }, 'the tag reaches it');
    assert.deepEqual(await resolve(c.tagged!, tagsOnly), { url: repo, ref: 'refs/tags/release', rev: c.tagged });

    git('tag', 'main', c.old!);
    try {
      assert.deepEqual(await resolve('main'), { url: repo, ref: 'refs/tags/main', rev: c.old }, "git's own order: the tag");
      assert.deepEqual(await resolve('main', ['refs/heads/*']), { url: repo, ref: 'refs/heads/main', rev: c.head });
    } finally {
      git('tag', '-d', 'main');
    }
    // A name nothing has is still simply not found.
    await assert.rejects(resolve('no-such-branch'), (error: unknown) => error instanceof GitRefNotFoundError && !(error instanceof GitRefUntrustedError));
  });

  it('serves a refused commit once a branch reaches it, within MIRROR_FRESH_MS of the push', async () => {
    const adopted = outputOf('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.org', 'commit-tree', '-p', c.head!, '-m', 'adopt', `${c.head}^{tree}`]).trim();
    git('update-ref', 'refs/pull/2/head', adopted);
    await assert.rejects(resolve(adopted), untrusted(/is not reachable/));
    git('branch', 'adopted', adopted);
    await sleep(MIRROR_FRESH_MS + 100);
    assert.deepEqual(await resolve(adopted), { url: repo, ref: 'refs/heads/adopted', rev: adopted });
  });

  it('stops serving a commit within MIRROR_MAX_STALE_MS once no trusted ref reaches it', async () => {
    git('branch', 'short-lived', c.pull!);
    await sleep(MIRROR_FRESH_MS + 100);
    assert.deepEqual(await resolve(c.pull!), { url: repo, ref: 'refs/heads/short-lived', rev: c.pull });
    git('branch', '-q', '-D', 'short-lived');
    await sleep(MIRROR_MAX_STALE_MS + 100);
    await assert.rejects(resolve(c.pull!), untrusted(/is not reachable/));
  });

  it('mirrors exactly the patterns: an exact ref becomes a glob git does not refuse when the ref is missing', () => {
    assert.deepEqual(mirrorRefspecs(['refs/heads/*', 'refs/heads/main']), ['+refs/heads/*:refs/heads/*', '+refs/heads/main*:refs/heads/main*']);
  });

  it('a commit under an exact pattern is served, and the remote lacking a ref of an exact pattern breaks nothing', async () => {
    const exact = ['refs/heads/main', 'refs/heads/nothing-has-this'];
    assert.deepEqual(await resolve(c.old!, exact), { url: repo, ref: 'refs/heads/main', rev: c.old });
    await assert.rejects(resolve(c.tagged!, exact), untrusted(/is not reachable/));
    await assert.rejects(resolve(c.pull!, exact), untrusted(/is not reachable/));
  });
});

describe('git calls to the remote are bounded', () => {
  let bin: string;
  let log: string;
  let repo: string;
  let savedPath: string | undefined;

  before(async () => {
    const dir = await tempDir();
    bin = path.join(dir, 'bin');
    log = path.join(dir, 'git.log');
    repo = path.join(dir, 'repo');
    fs.mkdirSync(bin);
    outputOf('git', ['init', '-q', '-b', 'main', repo]);
    outputOf('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.org', 'commit', '-q', '--allow-empty', '-m', 'one']);
    for (let i = 0; i < 12; i++) outputOf('git', ['-C', repo, 'branch', `b${i}`]);
    // A git that notes when each ls-remote starts and ends, and takes its time (HANG: forever).
    const realGit = outputOf('sh', ['-c', 'command -v git']).trim();
    fs.writeFileSync(
      path.join(bin, 'git'),
      `#!/bin/sh
if [ "$1" = ls-remote ]; then
  echo "start $(date +%s%N)" >> ${log}
  if [ -n "$NIXERY_TEST_GIT_HANG" ]; then exec sleep 600; fi
  sleep 0.3
  ${realGit} "$@"; rc=$?
  echo "end $(date +%s%N)" >> ${log}
  exit $rc
fi
exec ${realGit} "$@"
`,
      { mode: 0o755 },
    );
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${process.env.PATH}`;
  });
  after(() => {
    process.env.PATH = savedPath;
    delete process.env.NIXERY_TEST_GIT_HANG;
  });

  it(`runs at most ${GIT_REMOTE_CONCURRENCY} at once; the others wait their turn and are answered`, async () => {
    fs.writeFileSync(log, '');
    const specs = await Promise.all(Array.from({ length: 12 }, (_, i) => resolveGitRef(repo, `b${i}`, { timeoutSeconds: 30 })));
    assert.deepEqual(specs.map((s) => s.ref), Array.from({ length: 12 }, (_, i) => `refs/heads/b${i}`));
    const events = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ') as ['start' | 'end', string]);
    assert.equal(events.length, 24);
    let running = 0;
    let most = 0;
    for (const [kind] of events.sort((a, b) => (BigInt(a[1]) < BigInt(b[1]) ? -1 : BigInt(a[1]) > BigInt(b[1]) ? 1 : a[0] === 'end' ? -1 : 1))) {
      running += kind === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    assert.equal(most, GIT_REMOTE_CONCURRENCY);
  });

  it('gives up on a remote that does not answer within the timeout, including the calls that waited for a slot', async () => {
    process.env.NIXERY_TEST_GIT_HANG = '1';
    try {
      const started = performance.now();
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => resolveGitRef(repo, `b${i}`, { timeoutSeconds: 1 })));
      const took = performance.now() - started;
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        assert.ok((outcome as PromiseRejectedResult).reason instanceof NixTimeoutError, String((outcome as PromiseRejectedResult).reason));
      }
      // The timeout, then at most the grace a stopped git gets (3 s) and the wait for its pipes (1 s).
      assert.ok(took < 1_000 + 4_000 + 1_000, `took ${Math.round(took)} ms`);
    } finally {
      delete process.env.NIXERY_TEST_GIT_HANG;
    }
  });
});
