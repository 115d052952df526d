// Helpers for the pack tests: a fake Nix store under a temp dir, reading a tar
// back, and the reference the layers' gzip is checked against (gzip-stream.ts).

import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, rm, symlink, writeFile, chmod, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import type { Header } from 'tar-stream';
import { PackError } from './errors.ts';

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

// The gzip Transform moved into product code (gzip-stream.ts: the gzip variant of zstd images
// transcodes through it); re-exported here for the tests that take it as the reference.
export { gzipStream, parallelGzip, ParallelGzip } from './gzip-stream.ts';

export interface Digested {
  /** `sha256:<hex>` of every byte that passed through. */
  digest: string;
  size: number;
}

export interface HashingPassThrough {
  stream: Transform;
  /** Resolves when the stream's input ended; rejects if it was destroyed first. */
  result: Promise<Digested>;
}

/** A pass-through that hashes and counts what flows through it. */
export function hashingPassThrough(): HashingPassThrough {
  const hash = createHash('sha256');
  let size = 0;
  let resolve: (value: Digested) => void = () => {};
  let reject: (err: Error) => void = () => {};
  const result = new Promise<Digested>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers may only watch the stream; its error is reported there too.
  result.catch(() => {});
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      resolve({ digest: `sha256:${hash.digest('hex')}`, size });
      callback();
    },
    destroy(err, callback) {
      // After a normal end this is a no-op: the promise is already resolved.
      reject(err ?? new PackError('stream destroyed before its end; digest incomplete'));
      callback(err);
    },
  });
  return { stream, result };
}
