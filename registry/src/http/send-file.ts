// Sends a byte range of a local file as a response body with as little work per byte as Node
// allows (it has no sendfile): reads into pooled buffers, later chunks read while earlier ones are
// written, each write straight to the response with no stream plumbing in between.
// A stream pipeline here measured at a third of nginx's throughput on one connection: reads and
// writes took turns, and a fresh 1 MiB buffer per chunk spent a quarter of the main thread in GC.
import type { ServerResponse } from 'node:http';
import fs, { type FileHandle } from 'node:fs/promises';
import { BufferPool } from './buffer-pool.ts';

// 1 MiB chunks: with writes queued ahead, half as many reads and writes per byte beat 512 KiB
// (wrk on a 100 MB blob, 4 alternating rounds: 1 connection 2.33-2.41 against 2.14-2.21 GB/s,
// 8 connections 2.72-2.81 against 2.46-2.58 GB/s); 2 MiB measured the same as 1 MiB.
const CHUNK_SIZE = 1024 * 1024;
// Buffers per response: a lone download gets 4, so a write is queued behind the one the kernel is
// taking while the next chunk is read (wrk, 1 connection, 100 MB blob, 5 alternating rounds:
// median 2.22 GB/s against 2.06 GB/s with 2). Once several share the server, each gets 2: they
// fill each other's gaps, and more buffers only crowd the CPU caches (8 connections: 2.43 GB/s
// with 4 each against 2.65 GB/s with 2).
const LONE_WINDOW = 4;
const SHARED_WINDOW = 2;
/** Bodies being sent by this process, for the window. */
let activeBodies = 0;
// At most 16 MiB of idle buffers kept for the next responses.
const sharedPool = new BufferPool(CHUNK_SIZE, 16);

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
  /** Buffers this response may hold (reads ahead plus writes not yet taken by the kernel), at least 2; default 4 alone, 2 when shared. */
  window?: number;
}

/**
 * Writes `length` bytes of the file from `start` as the body of `res` (status and headers set by
 * the caller) and ends it. Always closes `handle`, also when the client aborts mid-body.
 *
 * Up to `window` buffers (4, or 2 while other bodies are being sent) are in use at once: chunks
 * being read ahead and chunks written but not yet taken by the kernel. A chunk is written as soon
 * as it is read, without waiting for the write before it, so the socket never runs dry between
 * two writes.
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
  const window = () => Math.max(2, options.window ?? (activeBodies > 1 ? SHARED_WINDOW : LONE_WINDOW));
  const end = start + length;
  let next = start;
  let bytes = 0;
  /** Reads issued and not yet written, in file order. */
  const reads: Promise<Chunk>[] = [];
  let held = 0;
  let writing = 0;
  let gone = res.destroyed;
  let closed = false;
  /** Buffers taken from the pool and not yet given back; of those, the ones in writes. */
  const taken = new Set<Buffer>();
  const inWrite = new Set<Buffer>();
  const giveBack = (buffer: Buffer) => {
    inWrite.delete(buffer);
    if (taken.delete(buffer)) pool.give(buffer);
  };
  let wake: (() => void) | undefined;
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onClose = () => {
    gone = true;
    closed = true;
    signal();
  };
  res.once('close', onClose);
  const readAhead = () => {
    while (next < end && held < window()) {
      const size = Math.min(pool.chunkSize, end - next);
      const buffer = pool.take();
      taken.add(buffer);
      const read = readChunk(handle, file, buffer, size, next);
      // Settled in `finally` if the loop stops early; never an unhandled rejection.
      read.catch(() => {});
      reads.push(read);
      next += size;
      held += 1;
    }
  };
  const written = () => new Promise<void>((resolve) => (wake = resolve));
  activeBodies += 1;
  try {
    for (;;) {
      readAhead();
      const read = reads.shift();
      if (read === undefined) {
        // Every buffer is in a write: wait for the kernel to take one, or for the end.
        if (gone || (next >= end && writing === 0)) break;
        await written();
        continue;
      }
      const chunk = await read;
      if (gone || res.destroyed) {
        giveBack(chunk.buffer);
        held -= 1;
        break;
      }
      writing += 1;
      inWrite.add(chunk.buffer);
      // Called once libuv is done with the buffer: taken by the kernel, or cancelled as the
      // socket closed (an error). A write to a socket already destroyed may never call back.
      res.write(chunk.buffer.subarray(0, chunk.size), (error) => {
        writing -= 1;
        if (error) {
          gone = true;
        } else {
          bytes += chunk.size;
          options.onSent?.(chunk.size);
        }
        giveBack(chunk.buffer);
        held -= 1;
        signal();
      });
    }
    if (gone || res.destroyed) return { bytes, complete: false };
    res.end();
    return { bytes, complete: true };
  } finally {
    activeBodies -= 1;
    res.off('close', onClose);
    // Every read has settled (failed ones too): what is not in a write is free.
    await Promise.allSettled(reads);
    for (const buffer of taken) if (!inWrite.has(buffer)) giveBack(buffer);
    // Writes that have not called back by the time the socket has closed never will, and the
    // closed socket holds nothing: those buffers come back then.
    if (inWrite.size > 0) {
      const rest = () => [...inWrite].forEach(giveBack);
      if (closed) rest();
      else res.once('close', rest);
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
