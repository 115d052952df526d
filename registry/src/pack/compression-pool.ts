// Limits how many blocks are compressed (deflated or zstd-compressed) at once across every layer being packed
// in this process, so packing several layers at once does not oversubscribe
// the CPU by more than one thread, and leaves libuv's pool a thread for the
// file system work of storage and serving (the tar thread reads the store itself).
//
// One block more than there are cores: a thread that finishes a block sleeps
// until the main thread has taken the result and started the next block, and
// every such hand-off leaves its core idle for a moment. With one deflate per
// core the cores were idle for over a quarter of a 355 MB layer's packing (2
// cores, vmstat), the deflate threads busy about half the time; a third block
// keeps a core busy through the hand-offs (measured on that layer: 6.7-6.9 s
// against 7.1-7.5 s, the same bytes).
//
// Blocks run on libuv's thread pool (zlib's async API), not worker_threads:
// measured on a 1 GiB layer into storage, worker threads peaked at 313 MB RSS
// (each zlib call leaves garbage and per-thread malloc arenas that threads
// allocating little of their own reclaim late; replacing threads every 256
// blocks did not help, MALLOC_ARENA_MAX=1 did), against 197 MB here, with
// byte-identical output.

import os from 'node:os';
import zlib from 'node:zlib';
import { CompressionThreads } from './compression-threads.ts';
import { PackError } from './errors.ts';

export interface DeflateJobOptions {
  /** Preset dictionary: the 32 KiB of input before this block, so matches may reach back across blocks. */
  dictionary?: Buffer;
  level: number;
  /** Ends the deflate stream (Z_FINISH) instead of a sync flush. */
  last: boolean;
}

export interface ZstdJobOptions {
  level: number;
  /**
   * log2 of the window. At least the input's size: zstd's window buffer then holds the whole input
   * without wrapping around, which would move its match finder to the slower external-dictionary
   * variant for the rest (half the time of a 4 MiB frame with level 3's 2 MiB window, by perf).
   * Measured on 160 MB of the bench corpus's tar in 4 MiB frames: 10-15 % less CPU than the default
   * window; compressed in one pass as well (zstd() below), 0.7 % smaller.
   */
  windowLog: number;
}

export type { RawDeflate, ZstdCompress } from './compression-protocol.ts';
import type { RawDeflate, ZstdCompress } from './compression-protocol.ts';

/**
 * Who the process is for. `pack`: packing is its only job (`nixery build`), so the pool oversubscribes
 * the cores by one (above). `serve`: a registry that builds must keep serving, so packing leaves a
 * core to the event loop and the tar thread: the deflating threads run at the loop's priority (the
 * pool also reads the blobs the server sends, so it cannot be niced), and each hand-off of a block
 * wakes one that preempts the loop. Measured with the bench's pulls suite (two cold builds of an
 * 80 MB closure under a steady load of warm manifest and blob GETs): see the commit message.
 */
export type PoolPurpose = 'pack' | 'serve';

/** Blocks compressed at once by default, at most libuv's pool size less one (a thread for the file system). */
export function defaultCompressionThreads(purpose: PoolPurpose, cores: number, uvThreads: number): number {
  const wanted = purpose === 'pack' ? cores + 1 : cores - 1;
  return Math.max(1, Math.min(wanted, uvThreads - 1));
}

/** defaultCompressionThreads for this process: its cores and libuv's pool size (UV_THREADPOOL_SIZE, default 4). */
function processCompressionThreads(purpose: PoolPurpose): number {
  return defaultCompressionThreads(purpose, os.availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE) || 4);
}

export interface CompressionPoolOptions {
  /** Blocks compressed at once; default `defaultCompressionThreads(purpose, …)`. */
  threads?: number;
  /** Default `pack`. */
  purpose?: PoolPurpose;
  /** zlib's deflateRaw; tests substitute one that fails. */
  deflateRaw?: RawDeflate;
  /** One frame per call; default zstdFrameOnLibuv (tests substitute one that fails). */
  zstdCompress?: ZstdCompress;
}

export class CompressionPool {
  readonly threads: number;
  readonly purpose: PoolPurpose;
  private readonly deflateRaw: RawDeflate;
  private readonly zstdCompress: ZstdCompress;
  private readonly queue: Array<() => void> = [];
  private running = 0;

  constructor(opts: CompressionPoolOptions = {}) {
    this.purpose = opts.purpose ?? 'pack';
    this.threads = Math.max(1, opts.threads ?? processCompressionThreads(this.purpose));
    this.deflateRaw = opts.deflateRaw ?? zlib.deflateRaw;
    this.zstdCompress = opts.zstdCompress ?? zstdFrameOnLibuv;
  }

  /** Raw-deflates `input`; blocks start in the order they were submitted. Rejects with zlib's error. */
  deflate(input: Buffer, opts: DeflateJobOptions): Promise<Buffer> {
    const options: zlib.ZlibOptions = {
      level: opts.level,
      // A sync flush ends each block on a byte boundary, so the pieces concatenate into one stream.
      finishFlush: opts.last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
      // One zlib call per block rather than one round trip per 16 KiB of output.
      chunkSize: input.length + 64 * 1024,
      ...(opts.dictionary ? { dictionary: opts.dictionary } : {}),
    };
    return this.run((done) => this.deflateRaw(input, options, done));
  }

  /**
   * Compresses `input` into one complete zstd frame (its size in the header, a checksum at the
   * end: what `zstd` writes); frames start in the order they were submitted. Single-threaded in
   * zstd itself: the pool's threads are the parallelism, and zstd's own multi-threaded mode is
   * broken in Node's streaming API (output after the end of the stream) anyway.
   */
  zstd(input: Buffer, opts: ZstdJobOptions): Promise<Buffer> {
    const options: zlib.ZstdOptions = {
      params: zstdParams(opts),
      // The whole input with ZSTD_e_end in the first call, into an output buffer above zstd's bound
      // for it: zstd compresses in one pass straight from the input (no copy into its window buffer)
      // and writes the content size into the header — the frame zstdCompressSync gives, so a
      // compression thread of our own (compression-threads.ts) writes the same bytes. Node's
      // asynchronous API adds an empty frame, which zstdFrameOnLibuv drops.
      flush: zlib.constants.ZSTD_e_end,
      chunkSize: input.length + 64 * 1024,
    };
    return this.run((done) => this.zstdCompress(input, options, done));
  }

  private run(start: (done: (err: Error | null, output: Buffer) => void) => void): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push(() =>
        start((err, output) => {
          this.running -= 1;
          this.next();
          if (err) reject(err);
          else resolve(output);
        }),
      );
      this.next();
    });
  }

  private next(): void {
    while (this.running < this.threads && this.queue.length > 0) {
      this.running += 1;
      const start = this.queue.shift()!;
      try {
        start();
      } catch (err) {
        // A synchronous throw (bad options) must not leak the slot.
        this.running -= 1;
        throw err;
      }
    }
  }
}

/** zstd's parameters for one frame (content size in the header, a checksum at the end: what `zstd` writes). */
function zstdParams(opts: ZstdJobOptions): Record<number, number> {
  return {
    [zlib.constants.ZSTD_c_compressionLevel]: opts.level,
    [zlib.constants.ZSTD_c_windowLog]: opts.windowLog,
    [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
    [zlib.constants.ZSTD_c_checksumFlag]: 1,
  };
}

const emptyFrames = new Map<string, Buffer>();

/**
 * Node's asynchronous API ends its stream with one more ZSTD_e_end on no input (its final flush),
 * which is a second, empty frame after ours: valid, but 13 bytes per frame that `zstd` would not
 * write. It is dropped here, after checking that it is exactly that frame.
 */
function withoutTrailingEmptyFrame(output: Buffer, params: zlib.ZstdOptions['params']): Buffer {
  const key = JSON.stringify(params);
  let empty = emptyFrames.get(key);
  if (!empty) {
    empty = zlib.zstdCompressSync(Buffer.alloc(0), { params });
    emptyFrames.set(key, empty);
  }
  const end = output.length - empty.length;
  if (end <= 0 || !output.subarray(end).equals(empty)) throw new PackError('zstd output does not end with the empty frame of its final flush');
  return output.subarray(0, end);
}

/** zlib.zstdCompress on libuv's pool, with the first frame only (see withoutTrailingEmptyFrame). */
export const zstdFrameOnLibuv: ZstdCompress = (input, options, done) =>
  zlib.zstdCompress(input, options, (err, output) => {
    if (err) return done(err, output);
    let frame: Buffer;
    try {
      frame = withoutTrailingEmptyFrame(output, options.params);
    } catch (error) {
      return done(error as Error, output);
    }
    done(null, frame);
  });

let shared: CompressionPool | undefined;
let sharedPurpose: PoolPurpose = 'pack';

/** Nice value of a server's compression threads: below its event loop, which serves while it packs. */
export const SERVE_COMPRESSION_NICE = 10;

/**
 * The process-wide pool every layer uses unless told otherwise. A server's compresses on threads
 * of its own below the event loop (compression-threads.ts); `nixery build`'s on libuv's pool, whose
 * threads pool-priority.ts lowers instead (fewer threads' heaps and arenas: less memory).
 */
export function sharedCompressionPool(): CompressionPool {
  if (!shared) {
    if (sharedPurpose === 'serve') {
      const count = processCompressionThreads('serve');
      const threads = new CompressionThreads({ count, nice: SERVE_COMPRESSION_NICE });
      shared = new CompressionPool({ purpose: 'serve', threads: count, deflateRaw: threads.deflateRaw, zstdCompress: threads.zstdCompress });
    } else {
      shared = new CompressionPool({ purpose: sharedPurpose });
    }
  }
  return shared;
}

/** Sizes the process-wide pool for `purpose`; called before anything is packed (the server, at its start). */
export function setSharedPoolPurpose(purpose: PoolPurpose): void {
  if (shared && shared.purpose !== purpose) throw new Error(`the shared compression pool was made for ${shared.purpose} before it was set to ${purpose}`);
  sharedPurpose = purpose;
}
