// The image tag of a git source names a branch, a tag or a commit. Nix 2.8's
// fetchGit cannot find out which: a bare name is always taken as a branch,
// no name means `master` on a remote (not the remote's default branch), and
// an annotated tag's ref resolves to the tag object rather than a commit. So
// the tag is resolved here with `git ls-remote`, and Nix gets a full ref and
// the commit it points to, which also pins the evaluation to one commit.
//
// Only trusted refs are served (git-trust.ts): a branch or tag name must resolve to a ref the
// configuration trusts, and a commit must be reached by one, which then goes to Nix with it.
import { DEFAULT_TRUSTED_REFS, isTrustedRef } from '../config/package-source.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { GitRefNotFoundError, GitRefUntrustedError, NixEvaluationError, type NixPhase } from './errors.ts';
import { runGit, trustedRefReaching } from './git-trust.ts';

export interface GitSpec {
  url: string;
  /** A full ref name (refs/heads/…, refs/tags/…, or HEAD): a trusted ref that reaches `rev`, the only one Nix fetches. */
  ref: string;
  /** The commit to evaluate. */
  rev: string;
}

/** `git ls-remote` answers in seconds; this bounds one below NIX_TIMEOUT, which is meant for builds. */
export const LS_REMOTE_TIMEOUT_SECONDS = 30;

const COMMIT = /^[0-9a-f]{40}$/;

export function isCommitHash(ref: string): boolean {
  return COMMIT.test(ref);
}

/** Parses `git ls-remote [--symref]` output into ref name → object id, plus symrefs. */
export function parseLsRemote(output: string): { refs: Map<string, string>; symrefs: Map<string, string> } {
  const refs = new Map<string, string>();
  const symrefs = new Map<string, string>();
  for (const line of output.split('\n')) {
    const [left, name] = line.split('\t');
    if (!left || !name) continue;
    if (left.startsWith('ref: ')) symrefs.set(name, left.slice(5));
    else if (/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(left)) refs.set(name, left);
  }
  return { refs, symrefs };
}

/**
 * Picks what `tag` means in `lsRemote`, in git's own order of precedence
 * (`git rev-parse NAME` prefers refs/tags/NAME to refs/heads/NAME). An
 * annotated tag is peeled to its commit (the `^{}` entry).
 */
export function pickRef(tag: string, lsRemote: string, trusted: (ref: string) => boolean = () => true): { ref?: string; rev: string } | null {
  const { refs, symrefs } = parseLsRemote(lsRemote);
  if (tag === '' || tag === 'latest') {
    const rev = refs.get('HEAD');
    if (!rev) return null;
    const head = symrefs.get('HEAD');
    return head ? { ref: head, rev } : { rev };
  }
  for (const ref of [`refs/tags/${tag}`, `refs/heads/${tag}`]) {
    const rev = refs.get(`${ref}^{}`) ?? refs.get(ref);
    // A tag not trusted does not hide a trusted branch of the same name.
    if (rev && trusted(ref)) return { ref, rev };
  }
  return null;
}

export interface GitRefOptions {
  /** NIX_TIMEOUT; a hung remote counts against the evaluation phase. */
  timeoutSeconds: number;
  /** A `performance.now()` time to stop at, when part of the phase is already spent; default: now + timeoutSeconds. */
  deadline?: number;
  log?: Logger;
  signal?: AbortSignal;
  /** The phase a timeout is reported in; default 'evaluate'. */
  phase?: NixPhase;
  /** The source's trusted ref patterns; default DEFAULT_TRUSTED_REFS. */
  trustedRefs?: readonly string[];
  /** Where the mirrors of trusted refs are kept (git-trust.ts); default beside Nix's cache. */
  mirrorRoot?: string;
}

/**
 * Resolves the image tag against the repository to a trusted ref and its commit. A 40-hex tag is a
 * commit, served only when a trusted ref reaches it. Throws GitRefNotFoundError (GitRefUntrustedError
 * for what exists but is not trusted).
 */
export async function resolveGitRef(url: string, tag: string | undefined, options: GitRefOptions): Promise<GitSpec> {
  const name = tag ?? '';
  const trusted = options.trustedRefs ?? DEFAULT_TRUSTED_REFS;
  const deadline = options.deadline ?? performance.now() + options.timeoutSeconds * 1000;
  const call = { phase: options.phase ?? 'evaluate', timeoutSeconds: options.timeoutSeconds, deadline, log: options.log ?? silentLogger, ...(options.signal ? { signal: options.signal } : {}) };
  const reachedBy = async (rev: string, shown: string): Promise<GitSpec> => {
    const ref = await trustedRefReaching(url, rev, trusted, { ...call, ...(options.mirrorRoot ? { mirrorRoot: options.mirrorRoot } : {}) });
    if (ref === undefined) throw new GitRefUntrustedError(url, shown, trusted, 'commit');
    return { url, ref, rev };
  };
  if (isCommitHash(name)) return reachedBy(name, name);

  const patterns = name === '' || name === 'latest' ? ['HEAD'] : [`refs/tags/${name}`, `refs/tags/${name}^{}`, `refs/heads/${name}`];
  const lsRemoteSeconds = Math.min(options.timeoutSeconds, LS_REMOTE_TIMEOUT_SECONDS);
  const result = await runGit('remote', ['ls-remote', '--symref', '--', url, ...patterns], {
    ...call,
    timeoutSeconds: lsRemoteSeconds,
    deadline: Math.min(deadline, performance.now() + lsRemoteSeconds * 1000),
  });
  if (result.exitCode !== 0) {
    throw new NixEvaluationError(`git ls-remote ${url} failed (exit ${result.exitCode ?? result.signal})`, result.logTail);
  }
  const picked = pickRef(name, result.stdout, (ref) => isTrustedRef(ref, trusted));
  if (!picked) {
    const untrusted = pickRef(name, result.stdout);
    if (untrusted?.ref) throw new GitRefUntrustedError(url, untrusted.ref, trusted, 'ref');
    throw new GitRefNotFoundError(url, name === '' ? 'HEAD' : name, result.logTail);
  }
  // `latest` is the default branch; a detached HEAD names a commit, served like one.
  if (picked.ref === undefined) return reachedBy(picked.rev, `${picked.rev} (HEAD)`);
  if (!isTrustedRef(picked.ref, trusted)) throw new GitRefUntrustedError(url, picked.ref, trusted, 'ref');
  return { url, ref: picked.ref, rev: picked.rev };
}
