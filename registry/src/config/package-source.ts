// Where packages come from. Nixery's three sources, in its order of precedence:
// NIXERY_CHANNEL, then NIXERY_PKGS_REPO, then NIXERY_PKGS_PATH.

export type PackageSource =
  /** A Nix channel (or any nixpkgs revision), fetched as a tarball from `${baseUrl}/${channel}.tar.gz`. */
  | { type: 'channel'; channel: string; baseUrl: string }
  /** A git repository; the image tag names the branch, tag or commit (`latest`: the default branch). */
  | { type: 'git'; url: string }
  /** A nixpkgs-shaped set on the local file system. */
  | { type: 'path'; path: string };

/** Nixery fetches channels from the nixpkgs repository's archive. */
export const DEFAULT_CHANNEL_BASE_URL = 'https://github.com/NixOS/nixpkgs/archive';
