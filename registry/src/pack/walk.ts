import type { Stats } from 'node:fs';
import path from 'node:path';
import type { LayerEntry } from './entry.ts';
import { UnsupportedFileTypeError } from './errors.ts';
import { lstatStore, readDirSorted, readLinkTarget } from './store-fs.ts';

/**
 * Every entry of one file system tree, depth first, each directory before its
 * contents and siblings in byte order. Lazy: only the listings of the current
 * directory's ancestors are held, so store paths of any size walk in bounded
 * memory. A failure is thrown where the entry would have been, after every
 * entry before it.
 */
export function* walkTree(fsPath: string, name: string): Generator<LayerEntry> {
  yield* walkStatted(fsPath, name, lstatStore(fsPath));
}

function* walkStatted(fsPath: string, name: string, stats: Stats): Generator<LayerEntry> {
  // Nix already normalised the permission bits (0444/0555); keep them as read.
  const mode = stats.mode & 0o7777;
  if (stats.isDirectory()) {
    yield { type: 'directory', name, mode };
    for (const child of readDirSorted(fsPath)) {
      const childPath = path.join(fsPath, child);
      yield* walkStatted(childPath, `${name}/${child}`, lstatStore(childPath));
    }
  } else if (stats.isSymbolicLink()) {
    yield { type: 'symlink', name, target: readLinkTarget(fsPath) };
  } else if (stats.isFile()) {
    yield { type: 'file', name, mode, size: stats.size, fsPath };
  } else {
    throw new UnsupportedFileTypeError(fsPath);
  }
}
