// A store-paths layer's entries, read on the tar thread (tar-thread.ts); the
// event loop's side is store-tar.ts.

import type { LayerEntry } from './entry.ts';
import { storeFsPath } from './store-path.ts';
import { walkTree } from './walk.ts';

// The image's /nix and /nix/store are not read from this machine (whose store
// directory is 1775 root:nixbld); a fixed mode keeps layers identical across builders.
const STORE_PARENT_MODE = 0o755;

/** The layer's entries, read from the store as they are taken (on the tar thread). */
export function* storeEntries(sorted: string[], root: string): Generator<LayerEntry> {
  yield { type: 'directory', name: 'nix', mode: STORE_PARENT_MODE };
  yield { type: 'directory', name: 'nix/store', mode: STORE_PARENT_MODE };
  for (const storePath of sorted) {
    yield* walkTree(storeFsPath(root, storePath), storePath.slice(1));
  }
}
