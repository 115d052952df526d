import type { Stats } from 'node:fs';
import path from 'node:path';
import type { LayerEntry } from './entry.ts';
import { UnsupportedFileTypeError } from './errors.ts';
import { lstatStore, readDirSorted, readLinkTarget } from './store-fs.ts';

// Children of a directory lstat'ed at once, so the walk is not one round trip per entry.
const STAT_BATCH = 32;

/**
 * Every entry of one file system tree, depth first, each directory before its
 * contents and siblings in byte order. Lazy: only the listings of the current
 * directory's ancestors (and a batch of their children's stats) are held, so
 * store paths of any size walk in bounded memory. A failure is thrown where
 * the entry would have been, after every entry before it.
 */
export async function* walkTree(fsPath: string, name: string): AsyncGenerator<LayerEntry> {
  yield* walkStatted(fsPath, name, await lstatStore(fsPath));
}

async function* walkStatted(fsPath: string, name: string, stats: Stats): AsyncGenerator<LayerEntry> {
  // Nix already normalised the permission bits (0444/0555); keep them as read.
  const mode = stats.mode & 0o7777;
  if (stats.isDirectory()) {
    yield { type: 'directory', name, mode };
    const children = await readDirSorted(fsPath);
    for (let start = 0; start < children.length; start += STAT_BATCH) {
      const batch = children.slice(start, start + STAT_BATCH);
      const settled = await Promise.allSettled(batch.map((child) => lstatStore(path.join(fsPath, child))));
      for (const [i, child] of batch.entries()) {
        const result = settled[i]!;
        if (result.status === 'rejected') throw result.reason;
        yield* walkStatted(path.join(fsPath, child), `${name}/${child}`, result.value);
      }
    }
  } else if (stats.isSymbolicLink()) {
    yield { type: 'symlink', name, target: await readLinkTarget(fsPath) };
  } else if (stats.isFile()) {
    yield { type: 'file', name, mode, size: stats.size, fsPath };
  } else {
    throw new UnsupportedFileTypeError(fsPath);
  }
}
