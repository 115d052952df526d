// The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), which writes Secret, ConfigMap,
// downward API and projected volumes so that a reader never sees half an update: the files live
// in a timestamped directory `..2006_01_02_15_04_05.<random>`, `..data` is a symlink to the
// current one, and each top-level name of the volume is a symlink through `..data`
// (`ca.crt -> ..data/ca.crt`). An update writes a new timestamped directory and swaps `..data` by
// renaming a new link over it, then removes names that are gone and the old directory.
import { randomInt } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const DATA_DIR_NAME = '..data';
const NEW_DATA_DIR_NAME = '..data_tmp';

export class AtomicWriteError extends Error {}

export interface PayloadFile {
  /** relative to the volume, no `..` component */
  path: string;
  content: Buffer;
  mode: number;
  /** owner of the file (kubelet's fsUser for projected tokens); root otherwise */
  uid?: number;
}

/** Upstream's validatePath: relative, not too long, no `..` component, not starting with `..`. */
export function validatePayloadPath(p: string): void {
  if (p === '') throw new AtomicWriteError('invalid path: must not be empty');
  if (p.length > 4096) throw new AtomicWriteError(`invalid path: must be less than or equal to 4096 characters`);
  if (path.isAbsolute(p)) throw new AtomicWriteError(`invalid path: must be relative path: ${p}`);
  if (p.split('/').includes('..')) throw new AtomicWriteError(`invalid path: must not contain '..': ${p}`);
  if (p.startsWith('..')) throw new AtomicWriteError(`invalid path: must not start with '..': ${p}`);
}

/** The first component of a payload path: the name the volume shows for it. */
function visibleName(p: string): string {
  return path.normalize(p).split('/')[0] ?? p;
}

/** `..2006_01_02_15_04_05.` in UTC plus random digits, as os.MkdirTemp makes it. */
function timestampedName(now: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}_${two(now.getUTCMonth() + 1)}_${two(now.getUTCDate())}_${two(now.getUTCHours())}_${two(now.getUTCMinutes())}_${two(now.getUTCSeconds())}`;
  return `..${stamp}.${randomInt(1e9, 1e10)}`;
}

async function currentDataDir(dir: string): Promise<string | undefined> {
  try {
    return await fs.readlink(path.join(dir, DATA_DIR_NAME));
  } catch {
    return undefined;
  }
}

async function readIfFile(file: string): Promise<{ content: Buffer; mode: number; uid: number } | undefined> {
  try {
    const stat = await fs.lstat(file);
    if (!stat.isFile()) return undefined;
    return { content: await fs.readFile(file), mode: stat.mode & 0o7777, uid: stat.uid };
  } catch {
    return undefined;
  }
}

/** The top-level names the current data directory shows (what the previous payload made visible). */
async function visibleNames(dir: string, dataDir: string | undefined): Promise<Set<string>> {
  if (!dataDir) return new Set();
  try {
    return new Set(await fs.readdir(path.join(dir, dataDir)));
  } catch {
    return new Set();
  }
}

/**
 * Writes `payload` into `dir` as the kubelet does, unless the volume already shows exactly it.
 * Returns whether anything was written. Modes are applied exactly (no umask); directories made
 * for nested paths are 0755.
 */
export async function writeAtomically(dir: string, payload: readonly PayloadFile[], now = new Date()): Promise<boolean> {
  for (const file of payload) validatePayloadPath(file.path);
  await fs.mkdir(dir, { recursive: true });
  const oldDataDir = await currentDataDir(dir);
  const oldNames = await visibleNames(dir, oldDataDir);
  const newNames = new Set(payload.map((f) => visibleName(f.path)));
  const removed = [...oldNames].filter((n) => !newNames.has(n));
  let changed = oldDataDir === undefined || removed.length > 0;
  if (!changed) {
    for (const file of payload) {
      const existing = await readIfFile(path.join(dir, oldDataDir!, file.path));
      if (!existing || !existing.content.equals(file.content) || existing.mode !== file.mode || existing.uid !== (file.uid ?? 0)) {
        changed = true;
        break;
      }
    }
  }
  if (!changed) return false;

  const tsName = timestampedName(now);
  const tsDir = path.join(dir, tsName);
  await fs.mkdir(tsDir);
  await fs.chmod(tsDir, 0o755);
  try {
    for (const file of payload) {
      const target = path.join(tsDir, file.path);
      await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
      await fs.writeFile(target, file.content, { mode: file.mode });
      await fs.chmod(target, file.mode);
      if (file.uid !== undefined) await fs.chown(target, file.uid, -1);
    }
    const newLink = path.join(dir, NEW_DATA_DIR_NAME);
    await fs.rm(newLink, { force: true });
    await fs.symlink(tsName, newLink);
    await fs.rename(newLink, path.join(dir, DATA_DIR_NAME));
  } catch (error) {
    await fs.rm(tsDir, { recursive: true, force: true });
    throw error;
  }
  for (const name of newNames) {
    const visible = path.join(dir, name);
    try {
      await fs.lstat(visible);
    } catch {
      await fs.symlink(path.join(DATA_DIR_NAME, name), visible);
    }
  }
  for (const name of removed) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  if (oldDataDir && oldDataDir !== tsName) await fs.rm(path.join(dir, oldDataDir), { recursive: true, force: true });
  return true;
}
