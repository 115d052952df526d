// A prototype of the change the packing numbers call for (not used by the registry): gzip one
// layer on several threads, as pigz does. The tar stream is cut into fixed-size blocks; each is
// raw-deflated on libuv's thread pool with the previous block's last 32 KiB as its dictionary and
// ends with a sync flush (the last one with Z_FINISH), and the pieces are joined in order between
// a gzip header and the CRC-32/ISIZE trailer. The output is a single valid gzip member that
// depends only on the input bytes, the level and the block size, never on thread timing.
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const deflateRaw = promisify(zlib.deflateRaw) as (input: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;
const WINDOW = 32 * 1024;
// mtime 0, no flags, XFL 0, OS 3 (Unix): the same header bytes Node's createGzip writes.
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);

export interface ParallelGzipOptions {
  level?: number;
  /** Uncompressed bytes per independently deflated block (pigz uses 128 KiB). */
  blockSize?: number;
  /** Blocks in flight at once (libuv's pool has 4 threads by default). */
  concurrency?: number;
}

export function parallelGzip(source: Readable, options: ParallelGzipOptions = {}): Readable {
  const level = options.level ?? 6;
  const blockSize = options.blockSize ?? Number(process.env.NIXERY_BENCH_PGZ_BLOCK ?? 128 * 1024);
  const concurrency = options.concurrency ?? Number(process.env.NIXERY_BENCH_PGZ_CONCURRENCY ?? 4);
  async function* gzip(): AsyncGenerator<Buffer> {
    yield HEADER;
    let crc = 0;
    let size = 0;
    let tail: Buffer | undefined;
    const pending: Promise<Buffer>[] = [];
    const submit = (block: Buffer, last: boolean) => {
      crc = zlib.crc32(block, crc);
      size += block.length;
      const dictionary = tail;
      tail = block.length >= WINDOW ? block.subarray(block.length - WINDOW) : Buffer.concat([tail ?? Buffer.alloc(0), block]).subarray(-WINDOW);
      pending.push(
        deflateRaw(block, {
          level,
          finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
          ...(dictionary && dictionary.length > 0 ? { dictionary } : {}),
        }),
      );
    };
    let parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(blockSize - length, chunk.length - offset);
        parts.push(chunk.subarray(offset, offset + take));
        length += take;
        offset += take;
        if (length === blockSize) {
          submit(Buffer.concat(parts, length), false);
          parts = [];
          length = 0;
          while (pending.length >= concurrency) yield await pending.shift()!;
        }
      }
    }
    submit(Buffer.concat(parts, length), true);
    while (pending.length) yield await pending.shift()!;
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(size % 2 ** 32, 4);
    yield trailer;
  }
  const out = Readable.from(gzip(), { objectMode: false });
  source.on('error', (error) => out.destroy(error));
  return out;
}
