import fs from 'node:fs';
import path from 'node:path';

let cached: string | undefined;

/**
 * The repository's nix/ folder. Found by walking up from this module, so the
 * same code works from registry/src (tests) and registry/dist (built), and in
 * an image that keeps the repository layout.
 */
export function defaultNixDir(): string {
  if (cached) return cached;
  let dir = import.meta.dirname;
  for (;;) {
    const candidate = path.join(dir, 'nix');
    if (fs.existsSync(path.join(candidate, 'resolve.nix'))) return (cached = candidate);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no nix/resolve.nix in any parent directory of ${import.meta.dirname}`);
    dir = parent;
  }
}
