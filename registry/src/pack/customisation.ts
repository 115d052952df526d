// The image's last layer: what makes a pile of store paths usable as a root
// file system. The requested packages appear at `/` (so `/bin/hello` exists),
// `/tmp` is writable by everyone, and `/usr/bin/env` exists for `#!` lines.

import { LayerTar } from './layer-tar.ts';
import { assertStorePath, canonicalStorePaths } from './store-path.ts';

export interface CustomisationSpec {
  /** Top-level store paths of the requested packages, in priority order (first wins on conflicts). */
  contents: string[];
  /** Every store path in the image (used to find an `env` for /usr/bin/env). */
  closure: string[];
}

export interface CustomisationOptions {
  /** Directory the store is read from: `/nix/store/x` is read at `<root>/nix/store/x`. Default `/`. */
  root?: string;
}

/**
 * The customisation layer: a symlink forest of `spec.contents` (see forest.ts
 * for the conflict rule), `tmp/` (1777), `usr/`, `usr/bin/` and `usr/bin/env`
 * (the entries are read on the tar thread: customisation-entries.ts).
 * Throws InvalidStorePathError synchronously for a malformed path; read
 * errors destroy the returned stream.
 */
export function customisationTar(spec: CustomisationSpec, opts: CustomisationOptions = {}): LayerTar {
  for (const p of spec.contents) assertStorePath(p);
  // First occurrence keeps its priority; later repeats add nothing.
  const contents = [...new Set(spec.contents)];
  const closure = canonicalStorePaths(spec.closure);
  return new LayerTar({ kind: 'customisation', contents, closure, root: opts.root ?? '/' });
}
