// File system reads of the store, with every failure turned into a typed error
// naming the path, and names decoded strictly so nothing is silently renamed.
// Synchronous: they run on the tar thread (tar-thread.ts), never on the event loop.

import type { Stats } from 'node:fs';
import fs from 'node:fs';
import { NonUtf8NameError, StoreReadError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function lstatStore(fsPath: string): Stats {
  try {
    return fs.lstatSync(fsPath);
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
}

/** Like lstatStore, but a missing path (or a non-directory on the way) is `undefined` instead of an error. */
export function lstatIfExists(fsPath: string): Stats | undefined {
  try {
    return fs.lstatSync(fsPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new StoreReadError(fsPath, err);
  }
}

/** A directory's entry names, sorted by byte order. */
export function readDirSorted(fsPath: string): string[] {
  let raw: Buffer[];
  try {
    raw = fs.readdirSync(fsPath, { encoding: 'buffer' });
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
  raw.sort(Buffer.compare);
  return raw.map((name) => decodeName(name, fsPath));
}

export function readLinkTarget(fsPath: string): string {
  let raw: Buffer;
  try {
    raw = fs.readlinkSync(fsPath, { encoding: 'buffer' });
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
  return decodeName(raw, fsPath);
}

function decodeName(raw: Buffer, fsPath: string): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new NonUtf8NameError(fsPath);
  }
}
