// The customisation layer's entries (see customisation.ts), read on the tar
// thread (tar-thread.ts).

import type { LayerEntry } from './entry.ts';
import { FOREST_DIR_MODE, forestEntries } from './forest.ts';
import type { SkeletonDir, SkeletonNode, SourceDir } from './forest.ts';
import { lstatIfExists, lstatStore } from './store-fs.ts';
import { storeFsPath } from './store-path.ts';

const TMP_MODE = 0o1777;

/** The layer's entries, read from the store as they are taken (on the tar thread). */
export function* customisationEntries(contents: string[], closure: string[], root: string): Generator<LayerEntry> {
  const sources = packageDirs(contents, root);
  const env = forestEnv(sources) ?? closureEnv(closure, root);
  yield* forestEntries('', sources, skeleton(env));
}

/** The requested packages that are directories; a package that is a single file has no tree to join. */
function packageDirs(contents: string[], root: string): SourceDir[] {
  const dirs: SourceDir[] = [];
  for (const storePath of contents) {
    const fsPath = storeFsPath(root, storePath);
    if (lstatStore(fsPath).isDirectory()) dirs.push({ storePath, fsPath });
  }
  return dirs;
}

/** The target the forest's `bin/env` would link to, by the forest's own conflict rule. */
function forestEnv(sources: SourceDir[]): string | undefined {
  let env: string | undefined;
  for (const source of sources) {
    const bin = lstatIfExists(`${source.fsPath}/bin`);
    if (!bin?.isDirectory()) continue;
    const stats = lstatIfExists(`${source.fsPath}/bin/env`);
    if (stats === undefined) continue;
    // A directory at bin/env anywhere wins the path, and a directory is no env.
    if (stats.isDirectory()) return undefined;
    env ??= `${source.storePath}/bin/env`;
  }
  return env;
}

/** The first store path of the image, in byte order, that has a non-directory `bin/env`. */
function closureEnv(closure: string[], root: string): string | undefined {
  for (const storePath of closure) {
    const stats = lstatIfExists(`${storeFsPath(root, storePath)}/bin/env`);
    if (stats !== undefined && !stats.isDirectory()) return `${storePath}/bin/env`;
  }
  return undefined;
}

function skeleton(env: string | undefined): SkeletonDir {
  const dir = (mode: number, children: Array<[string, SkeletonNode]>): SkeletonDir => ({
    kind: 'directory',
    mode,
    children: new Map(children),
  });
  const usrBin: Array<[string, SkeletonNode]> = env === undefined ? [] : [['env', { kind: 'symlink', target: env }]];
  return dir(FOREST_DIR_MODE, [
    ['tmp', dir(TMP_MODE, [])],
    ['usr', dir(FOREST_DIR_MODE, [['bin', dir(FOREST_DIR_MODE, usrBin)]])],
  ]);
}
