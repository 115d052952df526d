// Which commits of a git source may be evaluated. The image tag is chosen by whoever pulls, and a
// repository holds more commits than its branches and tags: GitHub keeps every pull request's
// under refs/pull/N/head, so "build the commit the tag names" would let anyone who can open a pull
// request run code in the registry. A commit is served only when a trusted ref (config:
// NIXERY_PKGS_REPO_TRUSTED_REFS) reaches it.
//
// Reachability needs the history, which `git ls-remote` does not give. So the registry keeps a bare
// mirror of the trusted refs only (`git fetch` of just those refspecs into a cache directory;
// nothing else of the repository is ever fetched into it) and asks it `for-each-ref --contains`.
// Nix is then given the commit together with the trusted ref that reaches it, never `allRefs`.
//
// Every git call that talks to the remote (this fetch, and git-ref.ts's `ls-remote`) waits for one
// of GIT_REMOTE_CONCURRENCY slots and is bounded in time; local calls on the mirror have slots of
// their own. Answers are remembered briefly, so a flood of made-up commits costs at most one fetch
// per MIRROR_FRESH_MS and one local check per commit and fetch.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BoundedMap } from '../cache/ttl-cache.ts';
import { Limiter, SingleFlight } from '../cache/single-flight.ts';
import { isTrustedRef } from '../config/package-source.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { NixEvaluationError, NixTimeoutError, type NixPhase } from './errors.ts';
import { run, type RunResult } from './run.ts';

/** Git calls that talk to the remote at once (ls-remote, mirror fetches); the rest wait their turn. */
export const GIT_REMOTE_CONCURRENCY = 4;
/** Local git calls on a mirror at once. */
const GIT_LOCAL_CONCURRENCY = 4;
/** A refusal is only given from a mirror fetched less than this before (a commit pushed a moment ago is found). */
export const MIRROR_FRESH_MS = 1_000;
/** A commit is only served from a mirror fetched, or a check made, less than this before (a branch force-pushed away stops counting). */
export const MIRROR_MAX_STALE_MS = 5_000;
/** Commits are chosen by clients: remember the answers for the most recent ones only. */
const MAX_REMEMBERED = 1_000;

const remoteSlots = new Limiter(GIT_REMOTE_CONCURRENCY);
const localSlots = new Limiter(GIT_LOCAL_CONCURRENCY);

export interface GitCallOptions {
  /** The configured limit, reported in NixTimeoutError. */
  timeoutSeconds: number;
  /** A `performance.now()` time to stop at; the wait for a slot counts against it. */
  deadline: number;
  log?: Logger;
  signal?: AbortSignal;
  phase?: NixPhase;
}

/**
 * Runs `git args` once a slot is free. A caller's wait is bounded by its deadline: slots are taken
 * in arrival order and every caller has the same timeout, so once a caller's deadline has passed
 * so have those of all callers ahead of it, and each of those gives up its slot at once (a waiting
 * one without running git, a running one by being stopped).
 */
export function runGit(where: 'remote' | 'local', args: readonly string[], options: GitCallOptions): Promise<RunResult> {
  const phase = options.phase ?? 'evaluate';
  return (where === 'remote' ? remoteSlots : localSlots).run(async () => {
    if (performance.now() >= options.deadline) throw new NixTimeoutError(options.timeoutSeconds, phase, `waited for a free slot to run git ${args[0] ?? ''}`);
    return run('git', args, {
      phase,
      timeoutSeconds: options.timeoutSeconds,
      deadline: options.deadline,
      log: options.log ?? silentLogger,
      ...(options.signal ? { signal: options.signal } : {}),
      // A credential prompt would hang until the timeout; fail at once instead.
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
  });
}

/** Where mirrors live: beside Nix's own git cache ($XDG_CACHE_HOME or ~/.cache), else the temporary directory. */
export function defaultMirrorRoot(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME || (env.HOME ? path.join(env.HOME, '.cache') : path.join(os.tmpdir(), 'nixery-cache'));
  return path.join(cache, 'nixery', 'git-mirrors');
}

/**
 * The refspecs that mirror exactly the refs `patterns` match. A pattern without `*` gets one at
 * its end: git refuses a fetch whose exact refspec names a ref the remote lacks, while a glob may
 * match nothing; what it matches beyond the pattern is never trusted (isTrustedRef decides).
 */
export function mirrorRefspecs(patterns: readonly string[]): string[] {
  return patterns.map((p) => (p.includes('*') ? `+${p}:${p}` : `+${p}*:${p}*`));
}

class Mirror {
  readonly dir: string;
  readonly url: string;
  /** When the last successful fetch began (performance.now()); -Infinity before the first. */
  fetchedAt = -Infinity;
  /** Counts successful fetches: a refusal remembered for a generation holds until the next fetch. */
  generation = 0;
  private readonly fetches = new SingleFlight<void>();

  constructor(dir: string, url: string) {
    this.dir = dir;
    this.url = url;
  }

  /** Fetches unless the last fetch began within `maxAgeMs`; concurrent callers share one fetch. */
  async fresh(maxAgeMs: number, patterns: readonly string[], options: GitCallOptions): Promise<void> {
    if (performance.now() - this.fetchedAt <= maxAgeMs) return;
    await this.fetches.run('', () => this.fetch(patterns, options));
  }

  private async fetch(patterns: readonly string[], options: GitCallOptions): Promise<void> {
    await this.init(options);
    const started = performance.now();
    const result = await runGit(
      'remote',
      [
        `--git-dir=${this.dir}`,
        // `for-each-ref --contains` walks history; a commit graph keeps that fast on a big repository.
        '-c', 'fetch.writeCommitGraph=true',
        'fetch', '--quiet', '--prune', '--no-tags', '--no-recurse-submodules', '--force',
        '--', this.url, ...mirrorRefspecs(patterns),
      ],
      options,
    );
    if (result.exitCode !== 0) {
      // A fetch stopped by force can leave a lock behind that fails every later one: start over.
      if (/\.lock'?: File exists/.test(result.logTail)) await fs.rm(this.dir, { recursive: true, force: true });
      throw new NixEvaluationError(`git fetch of the trusted refs of ${this.url} failed (exit ${result.exitCode ?? result.signal})`, result.logTail);
    }
    this.fetchedAt = started;
    this.generation++;
  }

  private async init(options: GitCallOptions): Promise<void> {
    if (await exists(path.join(this.dir, 'HEAD'))) return;
    await fs.mkdir(path.dirname(this.dir), { recursive: true });
    // Made aside and renamed into place, so a half-made mirror is never used.
    const staging = await fs.mkdtemp(`${this.dir}.init-`);
    try {
      const result = await runGit('local', ['init', '--quiet', '--bare', staging], options);
      if (result.exitCode !== 0) throw new NixEvaluationError(`git init of a mirror in ${staging} failed`, result.logTail);
      await fs.rename(staging, this.dir).catch(async (error: NodeJS.ErrnoException) => {
        // Another process made it meanwhile.
        if (!(await exists(path.join(this.dir, 'HEAD')))) throw error;
      });
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

  /** The trusted refs of the mirror that reach `commit` (a full hash), sorted; none when it does not have the commit. */
  async refsReaching(commit: string, patterns: readonly string[], options: GitCallOptions): Promise<string[]> {
    const has = await runGit('local', [`--git-dir=${this.dir}`, 'cat-file', '-e', `${commit}^{commit}`], options);
    if (has.exitCode !== 0) return [];
    const refs = await runGit('local', [`--git-dir=${this.dir}`, 'for-each-ref', '--format=%(refname)', `--contains=${commit}`], options);
    if (refs.exitCode !== 0) throw new NixEvaluationError(`git for-each-ref --contains ${commit} failed in the mirror of ${this.url}`, refs.logTail);
    return refs.stdout
      .split('\n')
      .filter((ref) => ref !== '' && isTrustedRef(ref, patterns))
      .sort();
  }
}

const mirrors = new Map<string, Mirror>();
/** By mirror, patterns and commit: the trusted ref found and when the fetch it was found in began; or the mirror generation that had none. */
const reached = new BoundedMap<string, { ref: string; fetchedAt: number }>(MAX_REMEMBERED);
const refused = new BoundedMap<string, number>(MAX_REMEMBERED);

export interface TrustOptions extends GitCallOptions {
  /** Where mirrors are kept; default defaultMirrorRoot(). */
  mirrorRoot?: string;
}

/**
 * A trusted ref of the repository at `url` that reaches `commit` (a full hash), or undefined when
 * none does. A ref is only found in a fetch that began within MIRROR_MAX_STALE_MS, and a refusal
 * only given after one that began within MIRROR_FRESH_MS.
 */
export async function trustedRefReaching(url: string, commit: string, patterns: readonly string[], options: TrustOptions): Promise<string | undefined> {
  const root = options.mirrorRoot ?? defaultMirrorRoot();
  const dir = path.join(root, createHash('sha256').update(url).digest('hex').slice(0, 32) + '.git');
  let mirror = mirrors.get(dir);
  if (!mirror) mirrors.set(dir, (mirror = new Mirror(dir, url)));
  const key = JSON.stringify([dir, patterns, commit]);

  const known = reached.get(key);
  if (known && performance.now() - known.fetchedAt <= MIRROR_MAX_STALE_MS) return known.ref;

  const check = async (): Promise<string | undefined> => {
    // What the mirror held before the check: a fetch finishing meanwhile must not be credited.
    const { generation, fetchedAt } = mirror;
    if (refused.get(key) === generation) return undefined;
    const [ref] = await mirror.refsReaching(commit, patterns, options);
    if (ref === undefined) refused.set(key, generation);
    else reached.set(key, { ref, fetchedAt });
    return ref;
  };

  await mirror.fresh(MIRROR_MAX_STALE_MS, patterns, options);
  const ref = await check();
  if (ref !== undefined) return ref;
  // Not in a mirror that may be a few seconds old: look at the remote again before refusing.
  await mirror.fresh(MIRROR_FRESH_MS, patterns, options);
  return check();
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}
