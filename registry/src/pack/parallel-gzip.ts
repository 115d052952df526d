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
// A layer tar arrives already cut into blocks and hashed by the tar thread
// (layer-tar.ts), which leaves the event loop nothing to do per byte:
// `gzipTarBlocks` only hands the blocks to the pool. The tests check its bytes
// against a Transform that cuts any byte stream itself (test-support.ts).

import { Readable } from 'node:stream';
import { sharedDeflatePool } from './deflate-pool.ts';
import type { DeflatePool } from './deflate-pool.ts';
import { DeflateError, PackError } from './errors.ts';
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
  pool?: DeflatePool;
}

/** What went in: the SHA-256 and size of the uncompressed bytes. */
export interface GzipInput {
  /** `sha256:<hex>` */
  digest: string;
  size: number;
}

interface Pending {
  /** Called once neither this block's job nor the next one's (its dictionary) reads the block. */
  release: () => void;
  output: Buffer | undefined;
  error: Error | undefined;
}

/** Deflates blocks on the pool and hands their output on in input order. */
export class BlockDeflater {
  private readonly level: number;
  private readonly pool: DeflatePool;
  private readonly output: (chunk: Buffer) => void;
  private readonly onError: (err: Error) => void;
  private readonly inFlight: Pending[] = [];
  private dictionary: Buffer | undefined;
  /** The last emitted block's release: the next block's job may still read its tail as dictionary. */
  private releaseEmitted: (() => void) | undefined;
  private offset = 0;
  private wake: (() => void) | undefined;
  failed: Error | undefined;
  // Blocks are emitted in order but finish out of order (a block of Python sources takes several
  // times as long as one of a library), and a block done behind a slow head still counts: with one
  // beyond those being deflated, a slow head left the other threads idle. Packing one 480 MB store
  // path as one layer, fewer than 2 blocks were deflating 8 % of the time with threads + 1, 2 %
  // with 4 per thread (which the tar thread's slots, layer-tar.ts, must cover).
  readonly maxInFlight: number;

  constructor(level: number, pool: DeflatePool, output: (chunk: Buffer) => void, onError: (err: Error) => void) {
    this.level = level;
    this.pool = pool;
    this.output = output;
    this.onError = onError;
    this.maxInFlight = pool.threads * 4;
    output(GZIP_HEADER);
  }

  /** Deflates `input` (full, except for the last block); `release` once the block is no longer read. */
  submit(input: Buffer, last: boolean, release: () => void): void {
    const offset = this.offset;
    this.offset += input.length;
    const dictionary = this.dictionary;
    // Every block but the last is full, so its tail is the whole window; a view suffices (a block is
    // released only once the next block, whose dictionary this is, has been deflated).
    this.dictionary = input.length >= WINDOW ? input.subarray(input.length - WINDOW) : undefined;
    const pending: Pending = { release, output: undefined, error: undefined };
    this.inFlight.push(pending);
    const job = this.pool.deflate(input, { level: this.level, last, ...(dictionary ? { dictionary } : {}) });
    job.then(
      (output) => {
        pending.output = output;
        this.emitDone();
      },
      (err: unknown) => {
        pending.error = new DeflateError(offset, err);
        this.emitDone();
      },
    );
  }

  /** The trailer, once every block is out. */
  trailer(crc: number, size: number): Buffer {
    this.releaseEmitted?.();
    this.releaseEmitted = undefined;
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(size % 2 ** 32, 4);
    return trailer;
  }

  fail(err: Error): void {
    // Jobs already on the pool finish there; their results are dropped.
    this.failed ??= err;
    this.wake?.();
  }

  /** Resolves once fewer than `limit` blocks are unemitted; rejects once the stream failed. */
  whenBelow(limit: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failed) {
          this.wake = undefined;
          reject(this.failed);
        } else if (this.inFlight.length < limit) {
          this.wake = undefined;
          resolve();
        } else {
          this.wake = check;
        }
      };
      check();
    });
  }

  /** Emits finished blocks in input order; a failed block fails the stream. */
  private emitDone(): void {
    while (this.inFlight.length > 0 && this.failed === undefined) {
      const head = this.inFlight[0]!;
      if (head.error) {
        this.failed = head.error;
        this.onError(head.error);
        break;
      }
      if (!head.output) break;
      this.inFlight.shift();
      // Blocks finish in order here, so this block's job, which read the previous block's tail, is done.
      this.releaseEmitted?.();
      this.releaseEmitted = head.release;
      this.output(head.output);
    }
    this.wake?.();
  }
}

export interface GzippedTar {
  /** One gzip member of the tar; errors with the tar's error. Destroying it abandons the tar. */
  stream: Readable;
  /** The uncompressed tar's digest and size, from the tar thread; rejects if the stream failed first. */
  input: Promise<GzipInput>;
}

/** Gzips a layer tar taken as blocks (LayerTar.blocks()); the same bytes the reference Transform gives (test-support.ts). */
export function gzipTarBlocks(blocks: TarBlocks, opts: ParallelGzipOptions = {}): GzippedTar {
  const level = opts.level ?? 6;
  const pool = opts.pool ?? sharedDeflatePool();
  let wanted = true;
  let wakeReader: (() => void) | undefined;
  const stream = new Readable({
    read() {
      wanted = true;
      wakeReader?.();
    },
    destroy(err, callback) {
      const failure = deflater.failed ?? err ?? new PackError('gzip stream destroyed');
      deflater.fail(failure);
      blocks.stop(failure);
      wakeReader?.();
      callback(err);
    },
  });
  const deflater = new BlockDeflater(
    level,
    pool,
    (chunk) => {
      if (!stream.push(chunk)) wanted = false;
    },
    (err) => stream.destroy(err),
  );
  /** Waits while the consumer has enough: blocks stop being taken, so the tar thread stops too. */
  const whenWanted = () =>
    new Promise<void>((resolve) => {
      if (wanted || stream.destroyed) resolve();
      else wakeReader = () => ((wakeReader = undefined), resolve());
    });

  const input = blocks.summary.then(({ digest, size }) => ({ digest, size }));
  input.catch(() => {});
  void (async () => {
    for (;;) {
      await deflater.whenBelow(deflater.maxInFlight);
      await whenWanted();
      if (stream.destroyed) return;
      const block = await blocks.next();
      if (stream.destroyed) {
        block.release();
        return;
      }
      // A last block is never full (see TarBlock), so the blocks are cut as the Transform cuts them.
      deflater.submit(block.data, block.last, block.release);
      if (block.last) break;
    }
    const { crc, size } = await blocks.summary;
    await deflater.whenBelow(1);
    if (stream.destroyed) return;
    stream.push(deflater.trailer(crc, size));
    stream.push(null);
  })().catch((err: Error) => stream.destroy(err));
  return { stream, input };
}
