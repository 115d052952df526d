// A symlink forest in the manner of nixpkgs' symlinkJoin: the union of several
// store directory trees, where directories are real and everything else is an
// absolute symlink into the store. Walked lazily, merging one directory level
// of all packages at a time, so a huge package set never sits in memory whole.
//
// Conflict rule, per path:
//   - if any package (or the fixed skeleton) has a directory there, it is a
//     directory, merged from every package that has a directory there; the
//     non-directories at that path are dropped (the directory keeps its
//     subtree reachable, a link could only expose one package's); its mode
//     is the skeleton's if the skeleton has it (`tmp` stays 1777), else 0755;
//   - otherwise it is a symlink to the first package in priority order that
//     has the path; the fixed skeleton's links come after every package.
// Packages are looked at with lstat: a symlink to a directory is a leaf.

import path from 'node:path';
import type { LayerEntry } from './entry.ts';
import { compareBytes } from './store-path.ts';
import { lstatStore, readDirSorted } from './store-fs.ts';

/** A directory in a package: its store path (link targets) and where it is read from. */
export interface SourceDir {
  storePath: string;
  fsPath: string;
}

/** Fixed entries merged into the forest, such as `/tmp` and `/usr/bin/env`. */
export type SkeletonNode =
  | { kind: 'directory'; mode: number; children: ReadonlyMap<string, SkeletonNode> }
  | { kind: 'symlink'; target: string };

export type SkeletonDir = Extract<SkeletonNode, { kind: 'directory' }>;

export const FOREST_DIR_MODE = 0o755;

/**
 * The entries below one forest directory, depth first, siblings in byte order.
 * `prefix` is the directory's entry name with a trailing `/`, or '' at the top.
 */
export function* forestEntries(prefix: string, sources: readonly SourceDir[], skeleton: SkeletonDir | undefined): Generator<LayerEntry> {
  const listings = sources.map((source) => new Set(readDirSorted(source.fsPath)));
  const names = new Set<string>(skeleton?.children.keys() ?? []);
  for (const listing of listings) for (const name of listing) names.add(name);

  for (const name of [...names].sort(compareBytes)) {
    const entryName = prefix + name;
    const fixed = skeleton?.children.get(name);
    const subdirs: SourceDir[] = [];
    let firstLink: string | undefined;
    for (const [i, source] of sources.entries()) {
      if (!listings[i]?.has(name)) continue;
      const fsPath = path.join(source.fsPath, name);
      const stats = lstatStore(fsPath);
      const storePath = `${source.storePath}/${name}`;
      if (stats.isDirectory()) subdirs.push({ storePath, fsPath });
      else firstLink ??= storePath;
    }
    if (subdirs.length > 0 || fixed?.kind === 'directory') {
      const fixedDir = fixed?.kind === 'directory' ? fixed : undefined;
      yield { type: 'directory', name: entryName, mode: fixedDir?.mode ?? FOREST_DIR_MODE };
      yield* forestEntries(entryName + '/', subdirs, fixedDir);
    } else {
      const target = firstLink ?? (fixed?.kind === 'symlink' ? fixed.target : undefined);
      if (target !== undefined) yield { type: 'symlink', name: entryName, target };
    }
  }
}
