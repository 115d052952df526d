// Blob upload sessions of the distribution push API. A session's bytes live in a local file of
// this replica until the client finishes it; only then is the blob verified against its digest
// and handed to storage, so nothing partial is ever visible under a digest.
//
// A session a client abandons (no request for longer than the idle limit, NIXERY_UPLOAD_SESSION_TTL)
// is dropped with its file by `purgeIdle`, which service/purge.ts runs periodically; its id is then
// unknown like any other. The rule: a session with a request in flight — from `open` (or `start`)
// to `close`, which the HTTP layer calls around each request on the session — is never purged,
// however long that request takes (the connection limits bound it); idle time counts from the end
// of the session's last request.
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

export interface UploadsOptions {
  /** The clock of the idle rule, in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** What `purgeIdle` removed. */
export interface PurgedUploads {
  sessions: number;
  /** Bytes the sessions had received (their files' sizes). */
  bytes: number;
}

interface Activity {
  /** Requests on the session now. */
  inFlight: number;
  /** When its last request ended (or the current one began). */
  lastUsedMs: number;
}

export class Uploads {
  private readonly dir: string;
  private readonly now: () => number;
  private readonly sessions = new Map<string, UploadSession>();
  private readonly activity = new Map<string, Activity>();
  /** Appends to one session run one at a time, in arrival order. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(dir: string, options: UploadsOptions = {}) {
    this.dir = dir;
    this.now = options.now ?? Date.now;
  }

  async init(): Promise<void> {
    // Sessions do not survive a restart; their files are garbage.
    await fs.rm(this.dir, { recursive: true, force: true });
    await fs.mkdir(this.dir, { recursive: true });
  }

  /** A new session, with the request that started it in flight: `close` it when that request ends. */
  async start(name: string): Promise<UploadSession> {
    const session = { id: randomUUID(), name, size: 0 };
    await fs.writeFile(this.file(session.id), '');
    this.sessions.set(session.id, session);
    this.activity.set(session.id, { inFlight: 1, lastUsedMs: this.now() });
    return session;
  }

  /** The session a request names, now with that request in flight; throws UploadNotFoundError. `close` it when the request ends. */
  open(id: string, name: string): UploadSession {
    const session = ID.test(id) ? this.sessions.get(id) : undefined;
    const activity = session ? this.activity.get(session.id) : undefined;
    if (!session || !activity || session.name !== name) throw new UploadNotFoundError(id);
    activity.inFlight++;
    activity.lastUsedMs = this.now();
    return session;
  }

  /** The request that opened or started the session ended; its idle time starts now. Harmless after `finish`. */
  close(session: UploadSession): void {
    const activity = this.activity.get(session.id);
    if (!activity) return;
    activity.inFlight = Math.max(0, activity.inFlight - 1);
    activity.lastUsedMs = this.now();
  }

  /** Sessions open now (for tests and the purge's log line). */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Drops every session with no request in flight whose last request ended more than `idleMs`
   * ago, with its file. A dropped session is unknown from the moment this is called: the choice
   * and the removal from the table happen in one synchronous step, so no request can open a
   * session between being judged idle and being dropped.
   */
  async purgeIdle(idleMs: number): Promise<PurgedUploads> {
    const now = this.now();
    const idle: UploadSession[] = [];
    for (const [id, activity] of this.activity) {
      if (activity.inFlight > 0 || now - activity.lastUsedMs <= idleMs) continue;
      const session = this.sessions.get(id);
      this.activity.delete(id);
      this.locks.delete(id);
      if (!session) continue;
      this.sessions.delete(id);
      idle.push(session);
    }
    let bytes = 0;
    for (const session of idle) {
      const stat = await fs.stat(this.file(session.id)).catch(() => null);
      bytes += stat?.size ?? session.size;
      await fs.rm(this.file(session.id), { force: true });
    }
    return { sessions: idle.length, bytes };
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
    this.activity.delete(session.id);
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
