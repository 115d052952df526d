import { LayerTar } from './layer-tar.ts';
import { canonicalStorePaths } from './store-path.ts';

export interface StoreTarOptions {
  /** Directory the store is read from: `/nix/store/x` is read at `<root>/nix/store/x`. Default `/`. */
  root?: string;
}

/**
 * An uncompressed, deterministic tar of the given store paths: `nix/`,
 * `nix/store/`, then each store path recursively, in byte order (the entries
 * are read on the tar thread: store-entries.ts). Order and duplicates in
 * `paths` do not change the bytes. Throws InvalidStorePathError
 * synchronously for a path that is not `/nix/store/<name>`; read errors
 * destroy the returned stream.
 */
export function storePathsTar(paths: string[], opts: StoreTarOptions = {}): LayerTar {
  return new LayerTar({ kind: 'store-paths', paths: canonicalStorePaths(paths), root: opts.root ?? '/' });
}
