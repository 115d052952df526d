import path from 'node:path';
import { InvalidStorePathError } from './errors.ts';

export const STORE_DIR = '/nix/store';

// The characters Nix allows in store path names; anything else cannot have come from Nix.
const STORE_NAME = /^[A-Za-z0-9+\-._?=]+$/;

/** Throws unless `storePath` is a top-level store path (`/nix/store/<name>`, nothing below it). */
export function assertStorePath(storePath: string): void {
  if (!storePath.startsWith(STORE_DIR + '/')) {
    throw new InvalidStorePathError(storePath, `not under ${STORE_DIR}/`);
  }
  const name = storePath.slice(STORE_DIR.length + 1);
  if (name === '' || name === '.' || name === '..' || !STORE_NAME.test(name)) {
    throw new InvalidStorePathError(storePath, 'not a top-level store path name');
  }
}

/** Where a store path lives on this machine: under `root`, so tests can use a fake store. */
export function storeFsPath(root: string, storePath: string): string {
  return path.join(root, storePath);
}

/** Byte order of the UTF-8 encodings, which differs from JS string order outside the BMP. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Validated, de-duplicated and byte-sorted, so the caller's order and repeats cannot change the output. */
export function canonicalStorePaths(paths: readonly string[]): string[] {
  for (const p of paths) assertStorePath(p);
  return [...new Set(paths)].sort(compareBytes);
}
