// Gzip as a Transform: any byte stream cut into blocks at the same fixed offsets as the tar
// thread cuts a layer tar, each deflated on the compression pool with the window before it
// (parallel-gzip.ts's codec), so the bytes equal those gzipTarBlocks gives for the same tar.
// Packing never uses it (the tar thread cuts and hashes faster); it serves a stream that does not
// come from the tar thread: a stored zstd layer transcoded to the gzip layer a Docker schema 2
// client needs (builder/gzip-variant.ts), and the pack tests' reference.

import { createHash } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import type { Readable, TransformCallback } from 'node:stream';
import { createZstdDecompress, crc32 } from 'node:zlib';
import { BlockCompressor } from './block-compressor.ts';
import { compressedLayer } from './compress.ts';
import type { CompressedLayer, CompressOptions } from './compress.ts';
import { sharedCompressionPool } from './compression-pool.ts';
import type { CompressionPool } from './compression-pool.ts';
import { PackError } from './errors.ts';
import { BLOCK_SIZE, blocksInFlight, gzipCodec } from './parallel-gzip.ts';
import type { GzipInput, ParallelGzipOptions } from './parallel-gzip.ts';

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

/** Gzips any tar stream through the Transform: the bytes compressLayer gives for the same tar. */
export function gzipStream(tar: Readable, opts: CompressOptions = {}): CompressedLayer {
  const gzip = parallelGzip(opts);
  // pipeline destroys every stage with the first error, so the consumer of
  // `gzip` sees the tar's error, and destroying `gzip` stops the tar.
  pipeline(tar, gzip, () => {});
  return compressedLayer(gzip, gzip.input);
}


/**
 * A zstd-compressed tar (a stored zstd layer) as the gzip layer of the same tar: decompressed,
 * then gzipped as packing gzips it, so the bytes equal a gzip pack's. `diffId` is the SHA-256 of
 * the decompressed tar, for the caller to check against the layer's. A corrupt zstd stream fails
 * `stream` with zlib's error.
 */
export function gzipFromZstd(zstd: Readable, opts: Omit<CompressOptions, 'compression'> = {}): CompressedLayer {
  const gzip = parallelGzip(opts);
  pipeline(zstd, createZstdDecompress(), gzip, () => {});
  return compressedLayer(gzip, gzip.input);
}
