// Helpers for the pack tests: a fake Nix store under a temp dir, reading a tar
// back, and the reference the layers' gzip is checked against.

import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, rm, symlink, writeFile, chmod, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform, pipeline } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { extract } from 'tar-stream';
import type { Header } from 'tar-stream';
import { compressedLayer } from './compress.ts';
import type { CompressedLayer, CompressOptions } from './compress.ts';
import { sharedCompressionPool } from './compression-pool.ts';
import type { CompressionPool } from './compression-pool.ts';
import { PackError } from './errors.ts';
import { BlockCompressor } from './block-compressor.ts';
import { BLOCK_SIZE, blocksInFlight, gzipCodec } from './parallel-gzip.ts';
import type { GzipInput, ParallelGzipOptions } from './parallel-gzip.ts';

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

// The reference gzip: the same format as the layers' (parallel-gzip.ts), from a
// Transform that cuts any byte stream into blocks itself and hashes them as it
// goes. Every layer is gzipped from the tar thread's blocks (gzipTarBlocks);
// the tests check that those bytes are the ones this gives for the same tar.

/** A Transform from bytes to one gzip member of them, deflated block by block on the pool. */
export function parallelGzip(opts: ParallelGzipOptions = {}): ParallelGzip {
  return new ParallelGzip(opts.level ?? 6, opts.pool ?? sharedCompressionPool());
}

export class ParallelGzip extends Transform {
  /**
   * Resolves once the input ended, with its digest (hashed block by block as the blocks are cut,
   * which spares a stream stage of its own per chunk); rejects if the stream failed first.
   */
  readonly input: Promise<GzipInput>;
  private readonly hash = createHash('sha256');
  private settleInput: { resolve: (value: GzipInput) => void; reject: (err: Error) => void } | undefined;
  private readonly deflater: BlockCompressor;
  private block: Buffer;
  private filled = 0;
  // Block buffers are reused: a fresh 128 KiB buffer per block is external memory that only a
  // mark-compact frees, and V8 starts one for every so many MB of it (packing 355 MB into
  // storage: 11-16 mark-compacts with reuse, 17-19 without).
  private readonly spare: Buffer[] = [];
  private crc = 0;
  private size = 0;

  constructor(level: number, pool: CompressionPool) {
    super();
    this.input = new Promise<GzipInput>((resolve, reject) => (this.settleInput = { resolve, reject }));
    // Callers may only watch the stream; its error is reported there too.
    this.input.catch(() => {});
    this.deflater = new BlockCompressor(gzipCodec(level, pool), blocksInFlight(pool), (chunk) => this.push(chunk), (err) => this.destroy(err));
    this.block = this.newBlock();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      const copied = chunk.copy(this.block, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === BLOCK_SIZE) this.submit(false);
    }
    this.deflater.whenBelow(this.deflater.maxInFlight).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.submit(true);
    this.settleInput?.resolve({ digest: `sha256:${this.hash.digest('hex')}`, size: this.size });
    this.deflater.whenBelow(1).then(() => callback(null, this.deflater.trailer(this.crc, this.size)), callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const failure = this.deflater.failed ?? err ?? new PackError('gzip stream destroyed');
    this.deflater.fail(failure);
    // After the input ended this is a no-op: the promise is already settled.
    this.settleInput?.reject(failure);
    callback(err);
  }

  private submit(last: boolean): void {
    const buffer = this.block;
    const input = this.filled === BLOCK_SIZE ? buffer : buffer.subarray(0, this.filled);
    this.crc = crc32(input, this.crc);
    this.hash.update(input);
    this.size += input.length;
    this.deflater.submit(input, last, () => this.spare.push(buffer));
    if (!last) this.block = this.newBlock();
    this.filled = 0;
  }

  private newBlock(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }
}

/** Gzips any tar stream through the reference Transform, as compressLayer gzips a layer tar. */
export function gzipStream(tar: Readable, opts: CompressOptions = {}): CompressedLayer {
  const gzip = parallelGzip(opts);
  // pipeline destroys every stage with the first error, so the consumer of
  // `gzip` sees the tar's error, and destroying `gzip` stops the tar.
  pipeline(tar, gzip, () => {});
  return compressedLayer(gzip, gzip.input);
}

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
