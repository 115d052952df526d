import type { LayerEntry } from './entry.ts';
import { LayerTar } from './layer-tar.ts';
import { canonicalStorePaths, storeFsPath } from './store-path.ts';
import { walkTree } from './walk.ts';

export interface StoreTarOptions {
  /** Directory the store is read from: `/nix/store/x` is read at `<root>/nix/store/x`. Default `/`. */
  root?: string;
}

// The image's /nix and /nix/store are not read from this machine (whose store
// directory is 1775 root:nixbld); a fixed mode keeps layers identical across builders.
const STORE_PARENT_MODE = 0o755;

/**
 * An uncompressed, deterministic tar of the given store paths: `nix/`,
 * `nix/store/`, then each store path recursively, in byte order. Order and
 * duplicates in `paths` do not change the bytes. Throws InvalidStorePathError
 * synchronously for a path that is not `/nix/store/<name>`; read errors
 * destroy the returned stream.
 */
export function storePathsTar(paths: string[], opts: StoreTarOptions = {}): LayerTar {
  return new LayerTar({ kind: 'store-paths', paths: canonicalStorePaths(paths), root: opts.root ?? '/' });
}

/** The layer's entries, read from the store as they are taken (on the tar thread). */
export function* storeEntries(sorted: string[], root: string): Generator<LayerEntry> {
  yield { type: 'directory', name: 'nix', mode: STORE_PARENT_MODE };
  yield { type: 'directory', name: 'nix/store', mode: STORE_PARENT_MODE };
  for (const storePath of sorted) {
    yield* walkTree(storeFsPath(root, storePath), storePath.slice(1));
  }
}
