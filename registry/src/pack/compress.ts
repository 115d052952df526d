// Compress a layer tar (gzip or zstd) and compute its diff ID on the way through, in one pass,
// so a layer is never held in memory or read twice.

import type { Readable } from 'node:stream';
import type { CompressedInput } from './block-compressor.ts';
import { sharedCompressionPool } from './compression-pool.ts';
import type { CompressionPool } from './compression-pool.ts';
import { PackError } from './errors.ts';
import { LayerTar } from './layer-tar.ts';
import { gzipTarBlocks } from './parallel-gzip.ts';
import { zstdCut, zstdTarBlocks } from './parallel-zstd.ts';

/** How layers are compressed (NIXERY_LAYER_COMPRESSION). */
export type LayerCompression = 'gzip' | 'zstd';
export const LAYER_COMPRESSIONS: readonly LayerCompression[] = ['gzip', 'zstd'];

export interface CompressOptions {
  /** Default gzip. */
  compression?: LayerCompression;
  /** Gzip level 0–9, default 6; zstd level 1–19, default 3. */
  level?: number;
  /** Threads that deflate; default the process-wide pool. The bytes do not depend on it. */
  pool?: CompressionPool;
}

export interface CompressedLayer {
  /** The compressed tar, to be written to storage; errors if the tar source fails. */
  stream: Readable;
  /**
   * `sha256:<hex>` of the uncompressed tar (the OCI diff ID); resolves once the
   * tar ended, which needs `stream` to be consumed: do not await it first.
   */
  diffId: Promise<string>;
  uncompressedSize: Promise<number>;
}

/**
 * Compresses a layer tar (storePathsTar, customisationTar) on the compression
 * pool's threads: gzip as parallel-gzip.ts, zstd as parallel-zstd.ts; the tar
 * thread hashes the uncompressed bytes on the way. A failing tar or compressing
 * thread destroys `stream` with its error and rejects both promises, so a
 * failed pack cannot be mistaken for a complete layer. Blocks are cut at fixed
 * offsets and nothing carries a time, so the output is a function of the input,
 * format and level (for given zlib and zstd versions), whatever the thread
 * count. Throws PackError for a layer tar that has been read (and, from untyped
 * callers, anything else).
 */
export function compressLayer(tar: LayerTar, opts: CompressOptions = {}): CompressedLayer {
  if (!(tar instanceof LayerTar) || tar.readableDidRead || tar.destroyed) {
    throw new PackError('compressLayer takes a layer tar (storePathsTar, customisationTar) that has not been read');
  }
  const compression = opts.compression ?? 'gzip';
  if (!LAYER_COMPRESSIONS.includes(compression)) throw new PackError(`unknown layer compression ${JSON.stringify(compression)}`);
  const pool = opts.pool ?? sharedCompressionPool();
  // The layer tar arrives cut into blocks and hashed by the tar thread: nothing to copy or hash here.
  const compressed =
    compression === 'zstd'
      ? zstdTarBlocks(tar.blocks(zstdCut(pool)), { level: opts.level ?? 3, pool })
      : gzipTarBlocks(tar.blocks(), { level: opts.level ?? 6, pool });
  return compressedLayer(compressed.stream, compressed.input);
}

/** A CompressedLayer of a compressed stream and what went into it. */
export function compressedLayer(stream: Readable, input: Promise<CompressedInput>): CompressedLayer {
  const diffId = input.then((r) => r.digest);
  const uncompressedSize = input.then((r) => r.size);
  diffId.catch(() => {});
  uncompressedSize.catch(() => {});
  return { stream, diffId, uncompressedSize };
}
