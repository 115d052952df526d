// Mount points a host-root container needs but the host lacks (a volume at /data, say) have to
// exist on the host's file system for the bind mount. They are created on demand, shared by
// reference count, and removed again — only while still empty — when the last user is done.
// Permanent ones (the service-account directory every pod mounts) are created and left: removing
// a directory detaches the mounts on it in every mount namespace, and another agent on this
// machine, which cannot see this one's counts, may still have containers using it.
import fs from 'node:fs/promises';
import path from 'node:path';

export class HostMountPoints {
  readonly #created = new Map<string, number>();
  /** released roots that still held another pod's mount point when they were released */
  readonly #pending = new Set<string>();
  readonly #permanent: ReadonlySet<string>;

  constructor(permanent: readonly string[] = []) {
    this.#permanent = new Set(permanent);
  }

  /** Makes `target` exist; returns the release function. */
  async acquire(target: string, kind: 'dir' | 'file'): Promise<() => Promise<void>> {
    if (this.#permanent.has(target) && kind === 'dir') {
      await fs.mkdir(target, { recursive: true });
      return async () => {};
    }
    const missing = await topmostMissing(target);
    if (missing === undefined) return async () => {};
    if (kind === 'dir') await fs.mkdir(target, { recursive: true });
    else {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.appendFile(target, '');
    }
    this.#created.set(missing, (this.#created.get(missing) ?? 0) + 1);
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      const count = (this.#created.get(missing) ?? 1) - 1;
      if (count > 0) {
        this.#created.set(missing, count);
        return;
      }
      this.#created.delete(missing);
      this.#pending.add(missing);
      const held = new Set([...this.#created.keys(), ...this.#permanent]);
      for (const root of [...this.#pending]) {
        const gone = await removeEmptyTree(root, held);
        const holdsOthers = [...held].some((h) => h.startsWith(root + path.sep));
        if (gone || !holdsOthers) this.#pending.delete(root);
      }
    };
  }

  /** Paths currently held, for diagnostics and tests. */
  held(): string[] {
    return [...this.#created.keys()];
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function topmostMissing(target: string): Promise<string | undefined> {
  if (await exists(target)) return undefined;
  let missing = target;
  for (let parent = path.dirname(missing); parent !== missing && !(await exists(parent)); parent = path.dirname(parent)) missing = parent;
  return missing;
}

/**
 * Removes `p` if it holds nothing but empty directories and empty files, sparing paths still held
 * by other pods; true when it is gone.
 */
async function removeEmptyTree(p: string, held: ReadonlySet<string>): Promise<boolean> {
  if (held.has(p)) return false;
  let stat;
  try {
    stat = await fs.lstat(p);
  } catch {
    return true;
  }
  if (stat.isDirectory()) {
    let empty = true;
    for (const entry of await fs.readdir(p)) {
      if (!(await removeEmptyTree(path.join(p, entry), held))) empty = false;
    }
    if (!empty) return false;
    await fs.rmdir(p).catch(() => {});
    return !(await exists(p));
  }
  if (stat.isFile() && stat.size === 0) {
    await fs.rm(p, { force: true });
    return true;
  }
  return false;
}
