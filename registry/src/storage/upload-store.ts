// The upload-session part of the storage contract: the state and bytes of chunked blob pushes,
// kept in the shared storage (as distribution does) so that any replica on that storage can
// continue a session another one started. push/uploads.ts is the only user.
//
// A session is a record (its repository name and last activity) and a chain of chunks, each
// stored under the offset it starts at. A chunk is added only at the end of the chain, and its
// name is taken by an exclusive create (a hard link on a file system, ifGenerationMatch=0 on
// GCS): of two appends racing for the same offset — two replicas, or a replayed chunk — exactly
// one wins and the other gets UploadOffsetError, which the HTTP layer answers with 416
// RANGE_INVALID. The chain can therefore never hold two chunks for one offset, nor a gap.
// The bytes become a blob only through putBlob, which checks the digest: nothing partial is ever
// visible under a digest.
import type { Readable } from 'node:stream';

export interface UploadState {
  id: string;
  /** The repository the session was started for; '' when its record is gone (an orphan). */
  name: string;
  /** Bytes received: the end of the chunk chain. */
  size: number;
  /** The last request on it, as written by the replica that served it (ms since the epoch). */
  lastActivityMs: number;
}

export interface UploadStore {
  /** Records a new session; the id must be fresh (a random UUID). */
  createUpload(id: string, name: string, nowMs: number): Promise<void>;
  /** The session's state, or null when it does not exist (finished, cancelled, purged or never). */
  uploadState(id: string): Promise<UploadState | null>;
  /**
   * Adds `body` as the chunk starting at `offset`, which must be the session's size: throws
   * UploadOffsetError (with the size) when it is not, or when a racing append took that offset
   * first; UploadGoneError when the session does not exist. A failed body adds nothing. Returns
   * the new size. An empty body adds no chunk.
   */
  appendUpload(id: string, offset: number, body: Readable): Promise<number>;
  /** Records a request on the session (its last activity); nothing when the session is gone. */
  touchUpload(id: string, nowMs: number): Promise<void>;
  /** Every byte received, chunk after chunk, streamed; fails with UploadGoneError when the session is gone. */
  readUpload(id: string): Readable;
  /** Removes the session with its chunks; returns the bytes removed (0: there was nothing). */
  deleteUpload(id: string): Promise<number>;
  /** Every session, orphans included, for the purge of idle ones; a page (or directory read) at a time. */
  listUploads(): AsyncIterable<UploadState>;
}

export class UploadOffsetError extends Error {
  readonly code = 'RANGE_INVALID';
  /** The session's size when the append was refused. */
  readonly size: number;
  constructor(id: string, offset: number, size: number) {
    super(`upload ${id}: a chunk at byte ${offset} does not continue the upload, which has ${size} bytes`);
    this.name = 'UploadOffsetError';
    this.size = size;
  }
}

export class UploadGoneError extends Error {
  readonly code = 'BLOB_UPLOAD_UNKNOWN';
  constructor(id: string) {
    super(`upload ${id} is not in the storage (finished, cancelled or expired)`);
    this.name = 'UploadGoneError';
  }
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Upload ids are lower-case UUIDs, checked before one reaches a path or an object name. */
export function isUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

export function assertUploadId(id: string): void {
  if (!isUploadId(id)) throw new Error(`invalid upload id ${JSON.stringify(id)}`);
}

/** Chunk names: the start offset, zero-padded so that names sort in byte order. */
export function chunkName(offset: number): string {
  return String(offset).padStart(16, '0');
}

export function chunkOffset(name: string): number | null {
  return /^[0-9]{16}$/.test(name) ? Number(name) : null;
}

export interface StoredChunk {
  offset: number;
  size: number;
}

/**
 * The chain of chunks from byte 0, in order, and where it ends. Appends only ever extend the
 * chain, so anything off it (which only a foreign writer could leave) is ignored, never read.
 */
export function chunkChain(chunks: readonly StoredChunk[]): { chain: StoredChunk[]; size: number } {
  const byOffset = new Map(chunks.filter((c) => c.size > 0).map((c) => [c.offset, c]));
  const chain: StoredChunk[] = [];
  let size = 0;
  for (let next = byOffset.get(0); next; next = byOffset.get(size)) {
    chain.push(next);
    size += next.size;
  }
  return { chain, size };
}

/**
 * An append by exclusive create, as the object stores make one: the offset must be the session's
 * size, and `create` makes the chunk object unless its name is taken — a taken name means a racing
 * append won, and the 416 carries the size as it is now.
 */
export async function appendExclusively(
  store: Pick<UploadStore, 'uploadState'>,
  id: string,
  offset: number,
  create: () => Promise<{ size: number; taken: boolean }>,
): Promise<number> {
  const state = await store.uploadState(id);
  if (!state) throw new UploadGoneError(id);
  if (offset !== state.size) throw new UploadOffsetError(id, offset, state.size);
  const { size, taken } = await create();
  if (taken) {
    const now = await store.uploadState(id);
    if (!now) throw new UploadGoneError(id);
    throw new UploadOffsetError(id, offset, now.size);
  }
  return offset + size;
}
