// Which packages the registry builds on demand (NIXERY_ALLOWED_PACKAGES, NIXERY_DENIED_PACKAGES).
// Pure functions only. Patterns are attribute paths (`hello`, `haskellPackages.pandoc`) in which
// `*` stands for any characters, dots included (`python3Packages.*`).
//
// A variant spelling must not get past a pattern: the Nix side looks each path segment up as given,
// then ignoring case, then with a `_` before a leading digit (`7zip` finds `_7zip`; see
// nix/resolve.nix). So names and patterns are compared in that folded form: lower case, without
// the `_` before a leading digit. An allow entry therefore also allows attributes that differ from
// it only in case (`perlPackages.JSON` and `perlPackages.Json`).
//
// - allow (when set): a name is allowed when an entry matches the whole name.
// - deny: a name is denied when an entry matches the whole name or any run of its segments at dot
//   boundaries, so `hello` also denies `hello.bin` (an output) and `pkgsStatic.hello` (the same
//   package through a nested package set). Deny wins over allow.

/** The grammar of one entry: attribute-path segments of letters, digits, `_`, `-` and `*`. */
export const PACKAGE_PATTERN = /^[A-Za-z0-9_*-]+(?:\.[A-Za-z0-9_*-]+)*$/;
export const MAX_PACKAGE_PATTERNS = 256;
export const MAX_PACKAGE_PATTERN_LENGTH = 128;

export interface PackagePolicy {
  /** Unset: every package is allowed. */
  allow?: readonly string[];
  deny: readonly string[];
}

export interface RefusedPackage {
  /** The name as requested (or as a meta-package expanded to). */
  name: string;
  reason: 'denied' | 'not_allowed';
}

/** Why `pattern` is no valid entry, or undefined when it is one. */
export function packagePatternProblem(pattern: string): string | undefined {
  if (pattern === '') return 'an empty entry';
  if (pattern.length > MAX_PACKAGE_PATTERN_LENGTH) return `${JSON.stringify(pattern.slice(0, 40))}… is longer than ${MAX_PACKAGE_PATTERN_LENGTH} characters`;
  if (!PACKAGE_PATTERN.test(pattern)) {
    return `${JSON.stringify(pattern)} is no attribute path (letters, digits, _ - and * in segments separated by single dots)`;
  }
  return undefined;
}

/** The form names and patterns are compared in: what the Nix lookup cannot tell apart is equal. */
export function foldAttributePath(path: string): string {
  return path.toLowerCase().replace(/(^|\.)_(?=[0-9])/g, '$1');
}

interface Compiled {
  /** Folded entries without `*`, for exact lookups. */
  literals: Set<string>;
  /** The number of segments of each literal entry (the window sizes deny checks). */
  literalSegmentCounts: number[];
  /** Folded entries with `*`. */
  globs: string[];
}

export interface CompiledPackagePolicy {
  readonly allow: Compiled | undefined;
  readonly deny: Compiled;
}

function compile(patterns: readonly string[]): Compiled {
  const literals = new Set<string>();
  const globs: string[] = [];
  for (const pattern of patterns) {
    const problem = packagePatternProblem(pattern);
    if (problem) throw new Error(`invalid package pattern: ${problem}`);
    const folded = foldAttributePath(pattern);
    if (folded.includes('*')) globs.push(folded.replace(/\*+/g, '*'));
    else literals.add(folded);
  }
  const literalSegmentCounts = [...new Set([...literals].map((l) => l.split('.').length))];
  return { literals, literalSegmentCounts, globs };
}

/** Validates and prepares a policy once; throws on an invalid entry (config validates them first). */
export function compilePackagePolicy(policy: PackagePolicy): CompiledPackagePolicy {
  return { allow: policy.allow === undefined ? undefined : compile(policy.allow), deny: compile(policy.deny) };
}

export const ALLOW_EVERYTHING: CompiledPackagePolicy = compilePackagePolicy({ deny: [] });

/** The packages of `names` the policy refuses, in the order given; empty when all may be built. */
export function refusedPackages(policy: CompiledPackagePolicy, names: readonly string[]): RefusedPackage[] {
  const refused: RefusedPackage[] = [];
  for (const name of names) {
    const folded = foldAttributePath(name);
    if (isDenied(policy.deny, folded)) refused.push({ name, reason: 'denied' });
    else if (policy.allow && !isAllowed(policy.allow, folded)) refused.push({ name, reason: 'not_allowed' });
  }
  return refused;
}

function isAllowed(allow: Compiled, name: string): boolean {
  return allow.literals.has(name) || allow.globs.some((glob) => globMatches(glob, name, false));
}

function isDenied(deny: Compiled, name: string): boolean {
  if (deny.literals.size > 0) {
    const segments = name.split('.');
    for (const count of deny.literalSegmentCounts) {
      for (let start = 0; start + count <= segments.length; start++) {
        if (deny.literals.has(segments.slice(start, start + count).join('.'))) return true;
      }
    }
  }
  return deny.globs.some((glob) => globMatches(glob, name, true));
}

/**
 * Whether `glob` (`*`: any characters) matches all of `text`, or with `anywhere` some run of its
 * dot-separated segments. A simulation of the glob's automaton, O(text × glob): no backtracking,
 * so no request name can make it slow.
 */
export function globMatches(glob: string, text: string, anywhere: boolean): boolean {
  const m = glob.length;
  let states = new Uint8Array(m + 1);
  let next = new Uint8Array(m + 1);
  for (let i = 0; ; i++) {
    if (i === 0 || (anywhere && text[i - 1] === '.')) states[0] = 1;
    // `*` also matches nothing: whoever reached it has reached what follows it.
    for (let k = 0; k < m; k++) if (states[k] && glob[k] === '*') states[k + 1] = 1;
    if (states[m] && (i === text.length || (anywhere && text[i] === '.'))) return true;
    if (i === text.length) return false;
    const c = text[i];
    next.fill(0);
    let alive = false;
    for (let k = 0; k < m; k++) {
      if (!states[k]) continue;
      if (glob[k] === '*') next[k] = 1;
      else if (glob[k] === c) next[k + 1] = 1;
      else continue;
      alive = true;
    }
    [states, next] = [next, states];
    if (!alive && !anywhere) return false;
  }
}
