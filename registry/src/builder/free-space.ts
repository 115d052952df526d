// Free space for new builds: a build writes to the Nix store and then to the storage, so none
// starts while either file system has less free than the reserve (NIXERY_MIN_FREE_SPACE). Images
// already built need neither and keep being served. Each check is one statfs per volume, made
// only when a build is about to start, never on the warm paths.
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from './errors.ts';

/** Bytes to keep free, or a share of each file system's size. `{ bytes: 0 }` turns the check off. */
export type SpaceReserve = { bytes: number } | { percent: number };

export type VolumeName = 'storage' | 'nix_store';

export interface Volume {
  name: VolumeName;
  /** The directory whose file system is measured; the nearest existing ancestor if it does not exist yet. */
  path: string;
}

export interface VolumeSpace {
  volume: VolumeName;
  path: string;
  /** Bytes an unprivileged writer may still use (statfs's bavail). */
  freeBytes: number;
  totalBytes: number;
  /** The reserve in bytes for this file system. */
  reserveBytes: number;
}

export type StatFs = (path: string) => Promise<{ bavail: number; blocks: number; bsize: number }>;

/** Where Nix writes: the store's file system. */
export const NIX_STORE_DIR = '/nix/store';

/**
 * What a build writes to: the Nix store, then the storage — with the filesystem backend only; a
 * GCS or S3 bucket is no local disk, and only the Nix store is checked.
 */
export function buildVolumes(storage: { backend: 'filesystem'; path: string } | { backend: 'gcs' | 's3' }): Volume[] {
  return [...(storage.backend === 'filesystem' ? [{ name: 'storage' as const, path: storage.path }] : []), { name: 'nix_store', path: NIX_STORE_DIR }];
}

const DESCRIBE: Record<VolumeName, string> = { storage: 'the storage', nix_store: 'the Nix store' };

/** A build refused for lack of free space; a 503 UNAVAILABLE to clients, nothing was written. */
export class InsufficientSpaceError extends Error {
  readonly volume: VolumeName;
  /** For the log; clients are not told the registry's paths. */
  readonly path: string;
  readonly freeBytes: number;
  readonly reserveBytes: number;
  constructor(space: VolumeSpace) {
    super(
      `not enough free disk space to build a new image: ${DESCRIBE[space.volume]} has ${formatBytes(space.freeBytes)} free, ` +
        `less than the ${formatBytes(space.reserveBytes)} this registry keeps free; images already built are still served`,
    );
    this.name = 'InsufficientSpaceError';
    this.volume = space.volume;
    this.path = space.path;
    this.freeBytes = space.freeBytes;
    this.reserveBytes = space.reserveBytes;
  }
}

export class FreeSpace {
  private readonly volumes: Volume[];
  private readonly reserve: SpaceReserve;
  private readonly statfs: StatFs;

  constructor(options: { volumes: Volume[]; reserve: SpaceReserve; statfs?: StatFs }) {
    this.volumes = options.volumes;
    this.reserve = options.reserve;
    this.statfs = options.statfs ?? ((p) => fs.statfs(p));
  }

  /** Each volume's free space now, and its reserve. */
  async sample(): Promise<VolumeSpace[]> {
    return Promise.all(
      this.volumes.map(async ({ name, path: dir }) => {
        const stats = await statNearest(this.statfs, dir);
        const totalBytes = stats.blocks * stats.bsize;
        const reserveBytes = 'bytes' in this.reserve ? this.reserve.bytes : Math.ceil((totalBytes * this.reserve.percent) / 100);
        return { volume: name, path: dir, freeBytes: stats.bavail * stats.bsize, totalBytes, reserveBytes };
      }),
    );
  }

  /** Throws InsufficientSpaceError for the first volume below its reserve. */
  async check(): Promise<void> {
    if ('bytes' in this.reserve ? this.reserve.bytes === 0 : this.reserve.percent === 0) return;
    for (const space of await this.sample()) {
      if (space.freeBytes < space.reserveBytes) throw new InsufficientSpaceError(space);
    }
  }
}

/** statfs of `dir`, or of its nearest existing ancestor: the file system a new file there lands on. */
async function statNearest(statfs: StatFs, dir: string): ReturnType<StatFs> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    try {
      return await statfs(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || current === path.dirname(current)) throw error;
    }
  }
}

