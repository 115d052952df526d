// Gzip a layer tar and compute its diff ID on the way through, in one pass,
// so a layer is never held in memory or read twice.

import type { Readable } from 'node:stream';
import type { DeflatePool } from './deflate-pool.ts';
import { PackError } from './errors.ts';
import { LayerTar } from './layer-tar.ts';
import { gzipTarBlocks } from './parallel-gzip.ts';
import type { GzipInput } from './parallel-gzip.ts';

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
 * Gzips a layer tar (storePathsTar, customisationTar) on the deflate pool's
 * threads (see parallel-gzip.ts); the tar thread hashes the uncompressed bytes
 * on the way. A failing tar or deflate thread destroys `stream` with its error
 * and rejects both promises, so a failed pack cannot be mistaken for a complete
 * layer. The gzip header has mtime 0 and a fixed OS byte, and blocks are cut
 * at fixed offsets, so the output is a function of the input and level (for a
 * given zlib version), whatever the thread count. Throws PackError for a
 * layer tar that has been read (and, from untyped callers, anything else).
 */
export function compressLayer(tar: LayerTar, opts: CompressOptions = {}): CompressedLayer {
  if (!(tar instanceof LayerTar) || tar.readableDidRead || tar.destroyed) {
    throw new PackError('compressLayer takes a layer tar (storePathsTar, customisationTar) that has not been read');
  }
  // The layer tar arrives cut into blocks and hashed by the tar thread: nothing to copy or hash here.
  const gzipped = gzipTarBlocks(tar.blocks(), { level: opts.level ?? 6, ...(opts.pool ? { pool: opts.pool } : {}) });
  return compressedLayer(gzipped.stream, gzipped.input);
}

/** A CompressedLayer of a gzip stream and what went into it. */
export function compressedLayer(stream: Readable, input: Promise<GzipInput>): CompressedLayer {
  const diffId = input.then((r) => r.digest);
  const uncompressedSize = input.then((r) => r.size);
  diffId.catch(() => {});
  uncompressedSize.catch(() => {});
  return { stream, diffId, uncompressedSize };
}
