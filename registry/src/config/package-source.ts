// Where packages come from. Nixery's three sources, in its order of precedence:
// NIXERY_CHANNEL, then NIXERY_PKGS_REPO, then NIXERY_PKGS_PATH.

export type PackageSource =
  /** A Nix channel (or any nixpkgs revision), fetched as a tarball from `${baseUrl}/${channel}.tar.gz`. */
  | { type: 'channel'; channel: string; baseUrl: string }
  /**
   * A git repository; the image tag names the branch, tag or commit (`latest`: the default branch).
   * Only refs matching `trustedRefs` (default DEFAULT_TRUSTED_REFS) are served, and a commit only
   * when one of them reaches it.
   */
  | { type: 'git'; url: string; trustedRefs?: readonly string[] }
  /** A nixpkgs-shaped set on the local file system. */
  | { type: 'path'; path: string };

/** Nixery fetches channels from the nixpkgs repository's archive. */
export const DEFAULT_CHANNEL_BASE_URL = 'https://github.com/NixOS/nixpkgs/archive';

/**
 * The refs of a git source whose commits may be built: every branch and tag. Never `refs/pull/*`
 * (GitHub keeps every pull request's commits there) or other refs. Patterns are full ref names
 * with at most one `*`, which matches any characters, `/` included, as in git refspecs.
 */
export const DEFAULT_TRUSTED_REFS: readonly string[] = ['refs/heads/*', 'refs/tags/*'];

/** Why `pattern` is no trusted-ref pattern, or undefined when it is one. */
export function trustedRefPatternProblem(pattern: string): string | undefined {
  if (!pattern.startsWith('refs/')) return `${JSON.stringify(pattern)} is no full ref name: expected refs/…, e.g. refs/heads/*`;
  if (!/^refs(\/[A-Za-z0-9_*-][A-Za-z0-9._*-]*)+$/.test(pattern) || pattern.includes('..') || /\.(lock)?$/.test(pattern)) {
    return `${JSON.stringify(pattern)} is no ref pattern: expected components of letters, digits, _ . - and *, separated by /`;
  }
  if (pattern.split('*').length > 2) return `${JSON.stringify(pattern)} has more than one *`;
  return undefined;
}

/** Whether the full ref name `ref` matches one of `patterns` (`*` matches any characters, `/` included). */
export function isTrustedRef(ref: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const star = pattern.indexOf('*');
    if (star < 0) return ref === pattern;
    const prefix = pattern.slice(0, star);
    const suffix = pattern.slice(star + 1);
    return ref.length >= prefix.length + suffix.length && ref.startsWith(prefix) && ref.endsWith(suffix);
  });
}
