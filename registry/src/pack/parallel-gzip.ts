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

import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { sharedDeflatePool } from './deflate-pool.ts';
import type { DeflatePool } from './deflate-pool.ts';
import { DeflateError, PackError } from './errors.ts';

/** Part of the output format: changing it changes every layer's bytes. */
export const BLOCK_SIZE = 128 * 1024;
const WINDOW = 32 * 1024;
// mtime 0, no flags, XFL 0, OS 3 (Unix): the header Node's createGzip writes, so it carries no time.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

export interface ParallelGzipOptions {
  /** Gzip level 0–9; default 6. */
  level?: number;
  /** Default: the process-wide pool. */
  pool?: DeflatePool;
}

interface Pending {
  /** The block's input buffer, reused once neither this block's job nor the next one's (its dictionary) reads it. */
  input: Buffer;
  output: Buffer | undefined;
  error: Error | undefined;
}

/** What went in: the SHA-256 and size of the uncompressed bytes. */
export interface GzipInput {
  /** `sha256:<hex>` */
  digest: string;
  size: number;
}

/** A Transform from bytes to one gzip member of them, deflated block by block on the pool. */
export function parallelGzip(opts: ParallelGzipOptions = {}): ParallelGzip {
  return new ParallelGzip(opts.level ?? 6, opts.pool ?? sharedDeflatePool());
}

export class ParallelGzip extends Transform {
  /**
   * Resolves once the input ended, with its digest (hashed block by block as the blocks are cut,
   * which spares a stream stage of its own per chunk); rejects if the stream failed first.
   */
  readonly input: Promise<GzipInput>;
  private readonly hash = createHash('sha256');
  private settleInput: { resolve: (value: GzipInput) => void; reject: (err: Error) => void } | undefined;
  private readonly level: number;
  private readonly pool: DeflatePool;
  // One block beyond those being deflated, so the next one can start the moment a thread is free,
  // without waiting for the tar; more only hold memory (the pool oversubscribes the cores by one).
  private readonly maxInFlight: number;
  private block: Buffer;
  private filled = 0;
  // Block buffers are reused: a fresh 128 KiB buffer per block is external memory that only a
  // mark-compact frees, and V8 starts one for every so many MB of it (packing 355 MB into
  // storage: 11-16 mark-compacts with reuse, 17-19 without).
  private readonly spare: Buffer[] = [];
  /** The last emitted block's buffer: the next block's job may still read its tail as dictionary. */
  private emittedInput: Buffer | undefined;
  private dictionary: Buffer | undefined;
  private crc = 0;
  private size = 0;
  private readonly inFlight: Pending[] = [];
  private wake: (() => void) | undefined;
  private failed: Error | undefined;

  constructor(level: number, pool: DeflatePool) {
    super();
    this.level = level;
    this.pool = pool;
    this.maxInFlight = pool.threads + 1;
    this.input = new Promise<GzipInput>((resolve, reject) => (this.settleInput = { resolve, reject }));
    // Callers may only watch the stream; its error is reported there too.
    this.input.catch(() => {});
    this.block = this.newBlock();
    this.push(GZIP_HEADER);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      const copied = chunk.copy(this.block, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === BLOCK_SIZE) this.submit(false);
    }
    this.whenBelow(this.maxInFlight).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.submit(true);
    this.settleInput?.resolve({ digest: `sha256:${this.hash.digest('hex')}`, size: this.size });
    this.whenBelow(1).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size % 2 ** 32, 4);
      callback(null, trailer);
    }, callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Jobs already on the pool finish there; their results are dropped.
    this.failed ??= err ?? new PackError('gzip stream destroyed');
    // After the input ended this is a no-op: the promise is already settled.
    this.settleInput?.reject(this.failed);
    this.wake?.();
    callback(err);
  }

  private submit(last: boolean): void {
    const input = this.filled === BLOCK_SIZE ? this.block : this.block.subarray(0, this.filled);
    this.crc = crc32(input, this.crc);
    this.hash.update(input);
    this.size += input.length;
    const offset = this.size - input.length;
    const dictionary = this.dictionary;
    // Every block but the last is full, so its tail is the whole window; a view suffices (a block is
    // reused only once the next block, whose dictionary this is, has been deflated).
    this.dictionary = input.length >= WINDOW ? input.subarray(input.length - WINDOW) : undefined;
    const pending: Pending = { input: this.block, output: undefined, error: undefined };
    this.inFlight.push(pending);
    const job = this.pool.deflate(input, { level: this.level, last, ...(dictionary ? { dictionary } : {}) });
    if (!last) this.block = this.newBlock();
    this.filled = 0;
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

  /** Emits finished blocks in input order; a failed block fails the stream. */
  private emitDone(): void {
    while (this.inFlight.length > 0 && this.failed === undefined) {
      const head = this.inFlight[0]!;
      if (head.error) {
        this.failed = head.error;
        this.destroy(head.error);
        break;
      }
      if (!head.output) break;
      this.inFlight.shift();
      // Blocks finish in order here, so this block's job, which read the previous block's tail, is done.
      if (this.emittedInput) this.spare.push(this.emittedInput);
      this.emittedInput = head.input;
      this.push(head.output);
    }
    this.wake?.();
  }

  private newBlock(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }

  /** Resolves once fewer than `limit` blocks are unemitted; rejects once the stream failed. */
  private whenBelow(limit: number): Promise<void> {
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
}
