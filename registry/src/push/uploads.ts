// Blob upload sessions of the distribution push API. A session's bytes live in a local file of
// this replica until the client finishes it; only then is the blob verified against its digest
// and handed to storage, so nothing partial is ever visible under a digest.
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface UploadSession {
  id: string;
  name: string;
  /** Bytes received so far. */
  size: number;
}

export class UploadNotFoundError extends Error {
  readonly code = 'BLOB_UPLOAD_UNKNOWN';
  constructor(id: string) {
    super(`upload ${id} is not known (finished, cancelled or expired)`);
    this.name = 'UploadNotFoundError';
  }
}

export class UploadRangeError extends Error {
  readonly code = 'RANGE_INVALID';
  readonly size: number;
  constructor(expectedStart: number, got: number) {
    super(`chunk starts at byte ${got}, but the upload has ${expectedStart} bytes`);
    this.name = 'UploadRangeError';
    this.size = expectedStart;
  }
}

const ID = /^[0-9a-f-]{36}$/;

export class Uploads {
  private readonly dir: string;
  private readonly sessions = new Map<string, UploadSession>();
  /** Appends to one session run one at a time, in arrival order. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    // Sessions do not survive a restart; their files are garbage.
    await fs.rm(this.dir, { recursive: true, force: true });
    await fs.mkdir(this.dir, { recursive: true });
  }

  async start(name: string): Promise<UploadSession> {
    const session = { id: randomUUID(), name, size: 0 };
    await fs.writeFile(this.file(session.id), '');
    this.sessions.set(session.id, session);
    return session;
  }

  get(id: string, name: string): UploadSession {
    const session = ID.test(id) ? this.sessions.get(id) : undefined;
    if (!session || session.name !== name) throw new UploadNotFoundError(id);
    return session;
  }

  /** Appends a chunk; `start`, when the client sent Content-Range, must be where the upload ends. */
  append(session: UploadSession, body: Readable, start?: number): Promise<UploadSession> {
    return this.serialised(session.id, async () => {
      if (start !== undefined && start !== session.size) throw new UploadRangeError(session.size, start);
      let added = 0;
      body.on('data', (chunk: Buffer) => (added += chunk.length));
      try {
        await pipeline(body, createWriteStream(this.file(session.id), { flags: 'a' }));
      } catch (error) {
        // A broken chunk leaves the session where it was: cut the file back.
        await fs.truncate(this.file(session.id), session.size).catch(() => {});
        throw error;
      }
      session.size += added;
      return session;
    });
  }

  /** The whole upload, for verification and storage; the session ends either way. */
  contents(session: UploadSession): Readable {
    return createReadStream(this.file(session.id));
  }

  async finish(session: UploadSession): Promise<void> {
    this.sessions.delete(session.id);
    this.locks.delete(session.id);
    await fs.rm(this.file(session.id), { force: true });
  }

  private file(id: string): string {
    return path.join(this.dir, id);
  }

  private serialised<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.locks.set(id, next.catch(() => {}));
    return next;
  }
}
