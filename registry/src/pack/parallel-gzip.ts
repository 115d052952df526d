// Gzip on several threads, as pigz does, with output that depends only on the
// input bytes and the level, never on thread timing or the number of threads.
//
// The input is cut at fixed offsets into BLOCK_SIZE blocks. Each block is
// raw-deflated on the deflate pool (libuv's threads) with the 32 KiB of input before it as a
// preset dictionary (so matches still reach back across the cut, and the ratio
// stays within ~0.1 % of single-stream gzip) and ends with a sync flush, which
// leaves it on a byte boundary; the last block ends the stream instead. The
// pieces are emitted in input order between a fixed gzip header and the
// CRC-32/ISIZE trailer: one ordinary gzip member that any gunzip reads.
//
// The blocks are compressed and put in order by block-compressor.ts. The tests
// check the bytes against a Transform that cuts any byte stream itself
// (test-support.ts).

import { compressTarBlocks } from './block-compressor.ts';
import type { BlockCodec, CompressedTar } from './block-compressor.ts';
import { sharedCompressionPool } from './compression-pool.ts';
import type { CompressionPool } from './compression-pool.ts';
import { DeflateError } from './errors.ts';
import { TAR_BLOCK_SIZE } from './layer-tar.ts';
import type { TarBlocks } from './layer-tar.ts';

/** Part of the output format: changing it changes every layer's bytes. */
export const BLOCK_SIZE = TAR_BLOCK_SIZE;
const WINDOW = 32 * 1024;
// mtime 0, no flags, XFL 0, OS 3 (Unix): the header Node's createGzip writes, so it carries no time.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

export interface ParallelGzipOptions {
  /** Gzip level 0–9; default 6. */
  level?: number;
  /** Default: the process-wide pool. */
  pool?: CompressionPool;
}

/** What went in: the SHA-256 and size of the uncompressed bytes. */
export type { CompressedInput as GzipInput } from './block-compressor.ts';

/** Gzip's rules for the blocks: a fixed header, each block raw-deflated with the window before it, the CRC-32/ISIZE trailer. */
export function gzipCodec(level: number, pool: CompressionPool): BlockCodec {
  let dictionary: Buffer | undefined;
  return {
    header: GZIP_HEADER,
    readsPrevious: true,
    start(input, last, offset) {
      const preset = dictionary;
      // Every block but the last is full, so its tail is the whole window; a view suffices (a block is
      // released only once the next block, whose dictionary this is, has been deflated).
      dictionary = input.length >= WINDOW ? input.subarray(input.length - WINDOW) : undefined;
      return pool.deflate(input, { level, last, ...(preset ? { dictionary: preset } : {}) }).catch((err: unknown) => {
        throw new DeflateError(offset, err);
      });
    },
    trailer(crc, size) {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(crc >>> 0, 0);
      trailer.writeUInt32LE(size % 2 ** 32, 4);
      return trailer;
    },
  };
}

/**
 * Blocks in flight for a pool: 4 per deflating thread (GZIP_CUT's slots, layer-tar.ts, cover them).
 * Blocks are emitted in order but finish out of order (a block of Python sources takes several
 * times as long as one of a library), and a block done behind a slow head still counts: with one
 * beyond those being deflated, a slow head left the other threads idle. Packing one 480 MB store
 * path as one layer, fewer than 2 blocks were deflating 8 % of the time with threads + 1, 2 %
 * with 4 per thread.
 */
export function blocksInFlight(pool: CompressionPool): number {
  return pool.threads * 4;
}

/** A gzip stream of a layer tar and what went into it. */
export type GzippedTar = CompressedTar;

/** Gzips a layer tar taken as blocks (LayerTar.blocks()); the same bytes the reference Transform gives (test-support.ts). */
export function gzipTarBlocks(blocks: TarBlocks, opts: ParallelGzipOptions = {}): GzippedTar {
  const pool = opts.pool ?? sharedCompressionPool();
  return compressTarBlocks(blocks, gzipCodec(opts.level ?? 6, pool), blocksInFlight(pool));
}
