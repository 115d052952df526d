// File system reads of the store, with every failure turned into a typed error
// naming the path, and names decoded strictly so nothing is silently renamed.

import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { NonUtf8NameError, StoreReadError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function lstatStore(fsPath: string): Promise<Stats> {
  try {
    return await fs.lstat(fsPath);
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
}

/** Like lstatStore, but a missing path (or a non-directory on the way) is `undefined` instead of an error. */
export async function lstatIfExists(fsPath: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(fsPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new StoreReadError(fsPath, err);
  }
}

/** A directory's entry names, sorted by byte order. */
export async function readDirSorted(fsPath: string): Promise<string[]> {
  let raw: Buffer[];
  try {
    raw = await fs.readdir(fsPath, { encoding: 'buffer' });
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
  raw.sort(Buffer.compare);
  return raw.map((name) => decodeName(name, fsPath));
}

export async function readLinkTarget(fsPath: string): Promise<string> {
  let raw: Buffer;
  try {
    raw = await fs.readlink(fsPath, { encoding: 'buffer' });
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
