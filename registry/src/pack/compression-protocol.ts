// What compresses a block (zlib's callback API, on libuv's pool or on a compression thread) and
// the messages between the event loop and its compression threads (compression-threads.ts).
import type zlib from 'node:zlib';

export type RawDeflate = (input: Buffer, options: zlib.ZlibOptions, callback: (err: Error | null, output: Buffer) => void) => void;
/** Compresses `input` into exactly one zstd frame. */
export type ZstdCompress = (input: Buffer, options: zlib.ZstdOptions, callback: (err: Error | null, output: Buffer) => void) => void;

export type ToCompressionThread =
  | { op: 'deflateRaw'; id: number; input: Uint8Array; options: zlib.ZlibOptions }
  | { op: 'zstd'; id: number; input: Uint8Array; options: zlib.ZstdOptions }
  | { op: 'nice'; nice: number };

export type FromCompressionThread =
  | { op: 'done'; id: number; output: Uint8Array }
  | { op: 'failed'; id: number; message: string; code: string | undefined }
  /** The thread's nice value after setting it: the old one if it could not be set. */
  | { op: 'niced'; nice: number };
