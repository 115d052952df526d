// Temporary GC roots for builds in flight: while the registry collects its Nix store
// (nix/store-gc.ts), a build's derivations and outputs must stay live from its evaluation until its
// layers are packed and stored. Each build gets a directory of symlinks to its store paths under
// this process's own directory in Nix's roots (`/nix/var/nix/gcroots/nixery/<pid>`): Nix's
// collector scans the roots directory recursively and keeps what a symlink there points to, with
// its closure. A symlink may point to an output not built yet: it is a root once it exists.
// The directory goes when the build ends; a process that died leaves its directory behind, and the
// next registry start removes the directories of processes that are gone.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger.ts';

const NIX_STORE = '/nix/store';
export const DEFAULT_GC_ROOTS_BASE = '/nix/var/nix/gcroots/nixery';

export class BuildRoots {
  /** This process's directory. */
  readonly dir: string;
  private readonly base: string;
  private readonly log: Logger;
  private next = 0;

  constructor(options: { base?: string; log: Logger; pid?: number }) {
    this.base = options.base ?? DEFAULT_GC_ROOTS_BASE;
    this.dir = path.join(this.base, String(options.pid ?? process.pid));
    this.log = options.log;
  }

  /**
   * Removes the directories of registry processes no longer running (their builds ended with
   * them), and this pid's own: a container's registry often has the same pid after a restart.
   */
  async removeStale(): Promise<string[]> {
    const removed: string[] = [];
    let entries: string[];
    try {
      entries = await fs.readdir(this.base);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return removed;
      throw error;
    }
    for (const entry of entries) {
      if (!/^[0-9]+$/.test(entry) || (entry !== path.basename(this.dir) && isRunning(Number(entry)))) continue;
      await fs.rm(path.join(this.base, entry), { recursive: true, force: true });
      removed.push(entry);
    }
    if (removed.length) this.log.info('removed the Nix GC roots of registry processes that are gone', { processes: removed });
    return removed;
  }

  /** Roots `storePaths` until the returned release is called; more paths may be added to the same hold. */
  async hold(storePaths: readonly string[]): Promise<BuildRootHold> {
    const dir = path.join(this.dir, String(this.next++));
    await fs.mkdir(dir, { recursive: true });
    const hold = new BuildRootHold(dir, this.log);
    await hold.add(storePaths);
    return hold;
  }
}

export class BuildRootHold {
  readonly dir: string;
  private readonly log: Logger;
  private readonly held = new Set<string>();

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /** Store paths (`/nix/store/<hash>-<name>`, with or without `.drv`) rooted while the hold lasts. */
  async add(storePaths: readonly string[]): Promise<void> {
    for (const storePath of storePaths) {
      const name = path.basename(storePath);
      if (this.held.has(name)) continue;
      if (path.dirname(storePath) !== NIX_STORE || !/^[0-9a-z]{32}-[A-Za-z0-9+._?=-]+$/.test(name)) throw new RangeError(`not a store path: ${storePath}`);
      await fs.symlink(storePath, path.join(this.dir, name));
      this.held.add(name);
    }
  }

  /** The build ended: its paths are garbage for the next collection unless something else roots them. Never throws. */
  async release(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true }).catch((error: unknown) => this.log.warn('could not remove the Nix GC roots of a finished build', { dir: this.dir, error }));
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
