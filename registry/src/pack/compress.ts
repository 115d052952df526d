// Gzip a layer tar and compute its diff ID on the way through, in one pass,
// so a layer is never held in memory or read twice.

import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Transform, pipeline } from 'node:stream';
import type { DeflatePool } from './deflate-pool.ts';
import { PackError } from './errors.ts';
import { LayerTar } from './layer-tar.ts';
import { gzipTarBlocks, parallelGzip } from './parallel-gzip.ts';

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

export interface CompressOptions {
  /** Gzip level 0–9; default 6. */
  level?: number;
  /** Threads that deflate; default the process-wide pool. The bytes do not depend on it. */
  pool?: DeflatePool;
}

export interface CompressedLayer {
  /** The gzipped tar, to be written to storage; errors if the tar source fails. */
  stream: Readable;
  /**
   * `sha256:<hex>` of the uncompressed tar (the OCI diff ID); resolves once the
   * tar ended, which needs `stream` to be consumed: do not await it first.
   */
  diffId: Promise<string>;
  uncompressedSize: Promise<number>;
}

/**
 * Gzips `tar` on the deflate pool's threads (see parallel-gzip.ts), hashing
 * the uncompressed bytes on the way. A failing tar or deflate thread destroys
 * `stream` with its error and rejects both promises, so a failed pack cannot
 * be mistaken for a complete layer. The gzip header has mtime 0 and a fixed OS
 * byte, and blocks are cut at fixed offsets, so the output is a function of
 * the input and level (for a given zlib version), whatever the thread count.
 */
export function compressLayer(tar: Readable, opts: CompressOptions = {}): CompressedLayer {
  const gzipOptions = { level: opts.level ?? 6, ...(opts.pool ? { pool: opts.pool } : {}) };
  let stream: Readable;
  let input: Promise<{ digest: string; size: number }>;
  if (tar instanceof LayerTar && !tar.readableDidRead && !tar.destroyed) {
    // The layer tar arrives cut into blocks and hashed by the tar thread: nothing to copy or hash here.
    const gzipped = gzipTarBlocks(tar.blocks(), gzipOptions);
    stream = gzipped.stream;
    input = gzipped.input;
  } else {
    const gzip = parallelGzip(gzipOptions);
    // pipeline destroys every stage with the first error, so the consumer of
    // `gzip` sees the tar's error, and destroying `gzip` stops the tar.
    pipeline(tar, gzip, () => {});
    stream = gzip;
    input = gzip.input;
  }
  const diffId = input.then((r) => r.digest);
  const uncompressedSize = input.then((r) => r.size);
  diffId.catch(() => {});
  uncompressedSize.catch(() => {});
  return { stream, diffId, uncompressedSize };
}
