// Compresses a layer tar block by block on the compression pool and hands the output on in input
// order, so the bytes depend only on the input and the format, never on thread timing or the
// number of threads. The format's own rules (gzip's header, dictionaries and trailer; zstd's
// independent frames) are its codec: parallel-gzip.ts and parallel-zstd.ts.
//
// A layer tar arrives already cut into blocks and hashed by the tar thread (layer-tar.ts), which
// leaves the event loop nothing to do per byte: `compressTarBlocks` only hands the blocks to the
// pool.

import { Readable } from 'node:stream';
import { PackError } from './errors.ts';
import type { TarBlocks } from './layer-tar.ts';

/** One compressed format, block by block. */
export interface BlockCodec {
  /** Bytes before the first block's output. */
  readonly header: Buffer;
  /** Whether a block's job reads the block before it (gzip's dictionary): that block is then released one block late. */
  readonly readsPrevious: boolean;
  /**
   * Starts compressing the next block (called once per block, in input order, so a codec may keep
   * what it needs of the block before; that block stays unreleased until this one's job is done).
   * `offset` is where the block starts in the uncompressed input.
   */
  start(input: Buffer, last: boolean, offset: number): Promise<Buffer>;
  /** Bytes after the last block's output, from the whole input's CRC-32 and size. */
  trailer(crc: number, size: number): Buffer;
}

/** What went in: the SHA-256 and size of the uncompressed bytes. */
export interface CompressedInput {
  /** `sha256:<hex>` */
  digest: string;
  size: number;
}

interface Pending {
  /** Called once neither this block's job nor the next one's reads the block. */
  release: () => void;
  output: Buffer | undefined;
  error: Error | undefined;
}

/** Compresses blocks on the pool and hands their output on in input order. */
export class BlockCompressor {
  private readonly codec: BlockCodec;
  private readonly output: (chunk: Buffer) => void;
  private readonly onError: (err: Error) => void;
  private readonly inFlight: Pending[] = [];
  /** The last emitted block's release: the next block's job may still read it (gzip's dictionary). */
  private releaseEmitted: (() => void) | undefined;
  private offset = 0;
  private wake: (() => void) | undefined;
  failed: Error | undefined;
  /**
   * One block beyond those the pool compresses at once, so the next one can start the moment a
   * thread is free, without waiting for the tar; more only hold memory.
   */
  readonly maxInFlight: number;

  constructor(codec: BlockCodec, maxInFlight: number, output: (chunk: Buffer) => void, onError: (err: Error) => void) {
    this.codec = codec;
    this.output = output;
    this.onError = onError;
    this.maxInFlight = maxInFlight;
    if (codec.header.length > 0) output(codec.header);
  }

  /** Compresses `input` (full, except for the last block); `release` once the block is no longer read. */
  submit(input: Buffer, last: boolean, release: () => void): void {
    const offset = this.offset;
    this.offset += input.length;
    const pending: Pending = { release, output: undefined, error: undefined };
    this.inFlight.push(pending);
    this.codec.start(input, last, offset).then(
      (output) => {
        pending.output = output;
        this.emitDone();
      },
      (err: unknown) => {
        pending.error = err instanceof Error ? err : new PackError(String(err));
        this.emitDone();
      },
    );
  }

  /** The trailer, once every block is out. */
  trailer(crc: number, size: number): Buffer {
    this.releaseEmitted?.();
    this.releaseEmitted = undefined;
    return this.codec.trailer(crc, size);
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
      // Blocks finish in order here, so this block's job, which may have read the previous block, is done.
      this.releaseEmitted?.();
      this.releaseEmitted = undefined;
      if (this.codec.readsPrevious) this.releaseEmitted = head.release;
      else head.release();
      this.output(head.output);
    }
    this.wake?.();
  }
}

export interface CompressedTar {
  /** The compressed tar; errors with the tar's error. Destroying it abandons the tar. */
  stream: Readable;
  /** The uncompressed tar's digest and size, from the tar thread, once all output is out; rejects if the stream failed first. */
  input: Promise<CompressedInput>;
}

/** Compresses a layer tar taken as blocks (LayerTar.blocks()) with `codec`, `maxInFlight` blocks at a time. */
export function compressTarBlocks(blocks: TarBlocks, codec: BlockCodec, maxInFlight: number): CompressedTar {
  let wanted = true;
  let wakeReader: (() => void) | undefined;
  let settle!: { resolve: (input: CompressedInput) => void; reject: (err: Error) => void };
  // Settled by the output, not by the tar thread alone: a tar the thread finished can still fail to compress.
  const input = new Promise<CompressedInput>((resolve, reject) => (settle = { resolve, reject }));
  input.catch(() => {});
  const stream = new Readable({
    read() {
      wanted = true;
      wakeReader?.();
    },
    destroy(err, callback) {
      const failure = compressor.failed ?? err ?? new PackError('compressed layer stream destroyed');
      compressor.fail(failure);
      blocks.stop(failure);
      settle.reject(failure);
      wakeReader?.();
      callback(err);
    },
  });
  const compressor = new BlockCompressor(
    codec,
    maxInFlight,
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

  void (async () => {
    for (;;) {
      await compressor.whenBelow(compressor.maxInFlight);
      await whenWanted();
      if (stream.destroyed) return;
      const block = await blocks.next();
      if (stream.destroyed) {
        block.release();
        return;
      }
      // A last block is never full (see TarBlock), so the blocks are cut as the Transform cuts them.
      compressor.submit(block.data, block.last, block.release);
      if (block.last) break;
    }
    const { digest, crc, size } = await blocks.summary;
    await compressor.whenBelow(1);
    if (stream.destroyed) return;
    const trailer = compressor.trailer(crc, size);
    if (trailer.length > 0) stream.push(trailer);
    stream.push(null);
    settle.resolve({ digest, size });
  })().catch((err: Error) => stream.destroy(err));
  return { stream, input };
}
