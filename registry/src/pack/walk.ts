import path from 'node:path';
import type { LayerEntry } from './entry.ts';
import { UnsupportedFileTypeError } from './errors.ts';
import { lstatStore, readDirSorted, readLinkTarget } from './store-fs.ts';

/**
 * Every entry of one file system tree, depth first, each directory before its
 * contents and siblings in byte order. Lazy: only the listings of the current
 * directory's ancestors are held, so store paths of any size walk in bounded memory.
 */
export async function* walkTree(fsPath: string, name: string): AsyncGenerator<LayerEntry> {
  const stats = await lstatStore(fsPath);
  // Nix already normalised the permission bits (0444/0555); keep them as read.
  const mode = stats.mode & 0o7777;
  if (stats.isDirectory()) {
    yield { type: 'directory', name, mode };
    for (const child of await readDirSorted(fsPath)) {
      yield* walkTree(path.join(fsPath, child), `${name}/${child}`);
    }
  } else if (stats.isSymbolicLink()) {
    yield { type: 'symlink', name, target: await readLinkTarget(fsPath) };
  } else if (stats.isFile()) {
    yield { type: 'file', name, mode, size: stats.size, fsPath };
  } else {
    throw new UnsupportedFileTypeError(fsPath);
  }
}
