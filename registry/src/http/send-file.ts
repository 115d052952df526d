// Sends a byte range of a local file as a response body with as little work per byte as Node
// allows (it has no sendfile): reads into pooled buffers, the next chunk read while the current
// one is written, each write straight to the response with no stream plumbing in between.
// A stream pipeline here measured at a third of nginx's throughput on one connection: reads and
// writes took turns, and a fresh 1 MiB buffer per chunk spent a quarter of the main thread in GC.
import type { ServerResponse } from 'node:http';
import fs, { type FileHandle } from 'node:fs/promises';
import { BufferPool } from './buffer-pool.ts';

/** 512 KiB chunks, two per response in flight: the best of 256 KiB–4 MiB × 2–3 on loopback. */
const CHUNK_SIZE = 512 * 1024;
const sharedPool = new BufferPool(CHUNK_SIZE, 32);

export interface SendResult {
  /** Body bytes the kernel accepted. */
  bytes: number;
  /** False when the client went away first. */
  complete: boolean;
}

/** A read failed or came up short after the headers were sent; the response can only be cut. */
export class FileBodyError extends Error {
  readonly file: string;
  readonly position: number;
  constructor(message: string, file: string, position: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FileBodyError';
    this.file = file;
    this.position = position;
  }
}

/** Opens before any header is sent, so a file that vanished can still be answered with a 404. */
export async function openFileBody(file: string): Promise<FileHandle | null> {
  try {
    return await fs.open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export interface SendOptions {
  /** Called as the kernel takes each chunk: counts stay right when the client aborts mid-body. */
  onSent?: (bytes: number) => void;
  pool?: BufferPool;
}

/**
 * Writes `length` bytes of the file from `start` as the body of `res` (status and headers set by
 * the caller) and ends it. Always closes `handle`, also when the client aborts mid-body.
 */
export async function sendFileBody(
  res: ServerResponse,
  handle: FileHandle,
  file: string,
  start: number,
  length: number,
  options: SendOptions = {},
): Promise<SendResult> {
  const pool = options.pool ?? sharedPool;
  const end = start + length;
  let next = start;
  let bytes = 0;
  let pending: Promise<Chunk> | undefined;
  const readNext = () => {
    if (next >= end) return undefined;
    const size = Math.min(pool.chunkSize, end - next);
    const read = readChunk(handle, file, pool.take(), size, next);
    next += size;
    // Settled in `finally` if the loop stops early; never an unhandled rejection.
    read.catch(() => {});
    return read;
  };
  try {
    pending = readNext();
    while (pending) {
      const chunk = await pending;
      pending = readNext();
      if (!(await write(res, chunk.buffer.subarray(0, chunk.size)))) {
        // The socket may still hold this buffer: it is left to the garbage collector.
        return { bytes, complete: false };
      }
      bytes += chunk.size;
      options.onSent?.(chunk.size);
      pool.give(chunk.buffer);
    }
    if (res.destroyed) return { bytes, complete: false };
    res.end();
    return { bytes, complete: true };
  } finally {
    if (pending) {
      const last = await pending.catch(() => null);
      if (last) pool.give(last.buffer);
    }
    await handle.close();
  }
}

interface Chunk {
  buffer: Buffer;
  size: number;
}

async function readChunk(handle: FileHandle, file: string, buffer: Buffer, size: number, position: number): Promise<Chunk> {
  let filled = 0;
  while (filled < size) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, filled, size - filled, position + filled));
    } catch (cause) {
      throw new FileBodyError(`reading ${file} at byte ${position + filled} failed: ${(cause as Error).message}`, file, position + filled, { cause });
    }
    if (bytesRead === 0) throw new FileBodyError(`${file} ends at byte ${position + filled}, before the ${size}-byte chunk at ${position}`, file, position + filled);
    filled += bytesRead;
  }
  return { buffer, size };
}

/** Resolves once the kernel has the bytes (the buffer is free again), or false if the client is gone. */
function write(res: ServerResponse, data: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = () => resolve(false);
    res.once('close', onClose);
    res.write(data, (error) => {
      res.off('close', onClose);
      resolve(!error);
    });
  });
}
