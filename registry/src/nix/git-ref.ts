// The image tag of a git source names a branch, a tag or a commit. Nix 2.8's
// fetchGit cannot find out which: a bare name is always taken as a branch,
// no name means `master` on a remote (not the remote's default branch), and
// an annotated tag's ref resolves to the tag object rather than a commit. So
// the tag is resolved here with `git ls-remote`, and Nix gets a full ref and
// the commit it points to, which also pins the evaluation to one commit.
import { silentLogger, type Logger } from '../log/logger.ts';
import { GitRefNotFoundError, NixEvaluationError, type NixPhase } from './errors.ts';
import { run } from './run.ts';

export interface GitSpec {
  url: string;
  /** A full ref name (refs/heads/…, refs/tags/…); absent for a bare commit. */
  ref?: string;
  /** The commit to evaluate. */
  rev: string;
}

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
export function pickRef(tag: string, lsRemote: string): { ref?: string; rev: string } | null {
  const { refs, symrefs } = parseLsRemote(lsRemote);
  if (tag === '' || tag === 'latest') {
    const rev = refs.get('HEAD');
    if (!rev) return null;
    const head = symrefs.get('HEAD');
    return head ? { ref: head, rev } : { rev };
  }
  for (const ref of [`refs/tags/${tag}`, `refs/heads/${tag}`]) {
    const rev = refs.get(`${ref}^{}`) ?? refs.get(ref);
    if (rev) return { ref, rev };
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
}

/** Resolves the image tag against the repository; a 40-hex tag is a commit and needs no lookup. */
export async function resolveGitRef(url: string, tag: string | undefined, options: GitRefOptions): Promise<GitSpec> {
  const name = tag ?? '';
  if (isCommitHash(name)) return { url, rev: name };
  const patterns = name === '' || name === 'latest' ? ['HEAD'] : [`refs/tags/${name}`, `refs/tags/${name}^{}`, `refs/heads/${name}`];
  const result = await run('git', ['ls-remote', '--symref', '--', url, ...patterns], {
    phase: options.phase ?? 'evaluate',
    timeoutSeconds: options.timeoutSeconds,
    deadline: options.deadline ?? performance.now() + options.timeoutSeconds * 1000,
    log: options.log ?? silentLogger,
    ...(options.signal ? { signal: options.signal } : {}),
    // A credential prompt would hang until the timeout; fail at once instead.
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
  });
  if (result.exitCode !== 0) {
    throw new NixEvaluationError(`git ls-remote ${url} failed (exit ${result.exitCode ?? result.signal})`, result.logTail);
  }
  const picked = pickRef(name, result.stdout);
  if (!picked) throw new GitRefNotFoundError(url, name === '' ? 'HEAD' : name, result.logTail);
  return { url, ...picked };
}
