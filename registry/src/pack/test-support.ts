// Helpers for the pack tests: a fake Nix store under a temp dir, and reading a tar back.

import { mkdtemp, mkdir, rm, symlink, writeFile, chmod, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import type { Header } from 'tar-stream';

export type FakeNode =
  | { file: string | Buffer; mode?: number }
  | { link: string }
  | { dir: Record<string, FakeNode>; mode?: number };

export const file = (content: string | Buffer, mode = 0o444): FakeNode => ({ file: content, mode });
export const exe = (content: string): FakeNode => ({ file: content, mode: 0o555 });
export const link = (target: string): FakeNode => ({ link: target });
export const dir = (entries: Record<string, FakeNode>, mode = 0o555): FakeNode => ({ dir: entries, mode });

export interface FakeStore {
  root: string;
  /** Adds (or replaces) `/nix/store/<name>`; returns its store path. */
  add(name: string, node: FakeNode): Promise<string>;
  fsPath(storePath: string): string;
  cleanup(): Promise<void>;
}

/** A store under a temp dir with Nix's modes (files 0444/0555, dirs 0555). */
export async function fakeStore(): Promise<FakeStore> {
  const root = await mkdtemp(path.join(tmpdir(), 'nixery-pack-'));
  await mkdir(path.join(root, 'nix/store'), { recursive: true });
  return {
    root,
    async add(name, node) {
      await create(path.join(root, 'nix/store', name), node);
      return `/nix/store/${name}`;
    },
    fsPath: (storePath) => path.join(root, storePath),
    async cleanup() {
      await makeWritable(root);
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function create(fsPath: string, node: FakeNode): Promise<void> {
  if ('file' in node) {
    await writeFile(fsPath, node.file);
    await chmod(fsPath, node.mode ?? 0o444);
  } else if ('link' in node) {
    await symlink(node.link, fsPath);
  } else {
    await mkdir(fsPath);
    for (const [name, child] of Object.entries(node.dir)) await create(path.join(fsPath, name), child);
    await chmod(fsPath, node.mode ?? 0o555);
  }
}

// Read-only directories cannot be emptied by a non-root user.
async function makeWritable(fsPath: string): Promise<void> {
  const stats = await lstat(fsPath).catch(() => undefined);
  if (!stats?.isDirectory()) return;
  await chmod(fsPath, 0o755);
  for (const name of await readdir(fsPath)) await makeWritable(path.join(fsPath, name));
}

export interface TarRecord {
  header: Header;
  content: Buffer;
}

/** Every entry of a tar stream, with contents (for small test layers only). */
export async function readTar(tar: Readable | Buffer): Promise<TarRecord[]> {
  const records: TarRecord[] = [];
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      records.push({ header: entry.header, content: Buffer.concat(chunks) });
    }
  })();
  if (Buffer.isBuffer(tar)) {
    ex.end(tar);
  } else {
    tar.on('error', (err) => ex.destroy(err));
    tar.on('data', (chunk: Buffer) => {
      if (!ex.write(chunk)) {
        tar.pause();
        ex.once('drain', () => tar.resume());
      }
    });
    tar.on('end', () => ex.end(undefined));
  }
  await done;
  return records;
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
