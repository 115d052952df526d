// Nixery's image-name rules: the repository name is the package list. Pure functions only;
// the Nix side does the attribute lookup (case-insensitive, `_` for leading digits, dots).

export type System = 'x86_64-linux' | 'aarch64-linux';

export interface Architecture {
  /** The Nix system the packages are built for. */
  system: System;
  /** The GOARCH-style name used in image configs and manifest lists. */
  imageArch: 'amd64' | 'arm64';
}

export const AMD64: Architecture = { system: 'x86_64-linux', imageArch: 'amd64' };
export const ARM64: Architecture = { system: 'aarch64-linux', imageArch: 'arm64' };

export interface ImageSpec {
  /** The repository name as requested, e.g. `shell/git/htop`. */
  name: string;
  tag: string;
  arch: Architecture;
  /** Sorted, de-duplicated package names handed to Nix, meta-packages expanded. */
  packages: string[];
}

/** What `shell` stands for, as in Nixery. */
export const SHELL_PACKAGES = ['bashInteractive', 'coreutils', 'moreutils', 'nano'] as const;
/** Every image gets CA certificates and /etc/protocols & /etc/services. */
export const ALWAYS_INCLUDED = ['cacert', 'iana-etc'] as const;
const META = new Set(['shell', 'arm64']);

export class InvalidNameError extends Error {
  readonly code = 'NAME_INVALID';
  readonly repository: string;
  constructor(repository: string, reason: string) {
    super(`invalid repository name ${JSON.stringify(repository)}: ${reason}`);
    this.name = 'InvalidNameError';
    this.repository = repository;
  }
}

export class InvalidTagError extends Error {
  readonly code = 'TAG_INVALID';
  constructor(tag: string) {
    // Tags come from clients: an over-long one is not echoed whole.
    const shown = tag.length > 140 ? `${tag.slice(0, 128)}…` : tag;
    super(`invalid tag ${JSON.stringify(shown)}: expected up to 128 characters of letters, digits, _ . and -, not starting with . or -`);
    this.name = 'InvalidTagError';
  }
}

// The distribution spec's path-component grammar, allowing upper case as well: Docker clients
// only send lower case, but curl users may ask for `haskellPackages.pandoc` verbatim.
const COMPONENT = /^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && name.split('/').every((c) => COMPONENT.test(c));
}

export function validateTag(tag: string): string {
  if (!TAG.test(tag)) throw new InvalidTagError(tag);
  return tag;
}

/**
 * Turns a repository name and tag into the image to build. `a/b` and `b/a` give the same
 * package list; meta-packages (`shell`, `arm64`) are only recognised at the front.
 */
export function imageFromName(name: string, tag: string): ImageSpec {
  if (!isValidRepositoryName(name)) {
    throw new InvalidNameError(name, 'each path component must be letters and digits, separated by single . or _, double _, or dashes');
  }
  validateTag(tag);
  const components = name.split('/');
  let arch = AMD64;
  const packages: string[] = [];
  let leading = true;
  for (const component of components) {
    if (leading && META.has(component)) {
      if (component === 'arm64') arch = ARM64;
      else packages.push(...SHELL_PACKAGES);
      continue;
    }
    leading = false;
    if (META.has(component)) {
      throw new InvalidNameError(name, `meta-package "${component}" must come before all packages`);
    }
    packages.push(component);
  }
  packages.push(...ALWAYS_INCLUDED);
  return { name, tag, arch, packages: sortedUnique(packages) };
}

function sortedUnique(values: string[]): string[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
