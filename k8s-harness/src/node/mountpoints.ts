// Mount points a host-root container needs but the host lacks (a volume at /var/lib/nixery, say)
// have to exist on the host's file system for the bind mount. They are created on demand and left
// in place, empty: removing a directory detaches the mounts on it in every mount namespace
// (Linux ≥ 3.18), so a test cluster that removed "its" /var/lib/nixery after its last pod took
// the volume away from a registry pod of another test cluster running on the same machine, whose
// uploads then failed with ENOENT. Nothing on this machine can see every agent's users of a path,
// so none may remove one.
import fs from 'node:fs/promises';
import path from 'node:path';

export class HostMountPoints {
  readonly #created = new Set<string>();

  /** Makes `target` exist on the host as a directory or an empty file. */
  async ensure(target: string, kind: 'dir' | 'file'): Promise<void> {
    if (await exists(target)) return;
    if (kind === 'dir') await fs.mkdir(target, { recursive: true });
    else {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.appendFile(target, '');
    }
    this.#created.add(target);
  }

  /** Paths this agent created, for diagnostics and tests. */
  created(): string[] {
    return [...this.#created];
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
