// Blob upload sessions of the distribution push API. A session's state and bytes live in the
// shared storage (storage/upload-store.ts), so a chunked push whose requests land on different
// replicas continues wherever they land. Only when the client finishes it is the blob verified
// against its digest and handed to putBlob, so nothing partial is ever visible under a digest.
//
// Chunks must come in order (the spec): a chunk that does not start where the upload ends — a
// stale replay, or the loser of two PATCHes racing on different replicas — gets UploadRangeError
// (416 RANGE_INVALID) and changes nothing; the storage decides races exactly (one chunk per
// offset, taken by an exclusive create). Within this replica, appends to one session also run
// one at a time in arrival order, so a client's pipelined chunks without Content-Range do not
// race each other here.
//
// A session a client abandons (no request for longer than the idle limit, NIXERY_UPLOAD_SESSION_TTL)
// is dropped with its bytes by `purgeIdle`, which service/purge.ts runs on every replica; its id
// is then unknown to all of them. Idle time is the shared last activity every request writes
// (at its start and its end, at most once a second), so any replica judges it the same way; a request in flight on this
// replica — from `open` (or `start`) to `close`, which the HTTP layer calls around each request
// — additionally keeps the session from this replica's purge however long it takes. A request in
// flight on another replica wrote its activity when it began, and the connection limits end it
// within NIXERY_RECEIVE_TIMEOUT, which config.ts keeps below the TTL.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isUploadId, UploadGoneError, UploadOffsetError, type UploadStore } from '../storage/upload-store.ts';

export interface UploadSession {
  id: string;
  name: string;
  /** Bytes received so far, as of the last operation of this request. */
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
  /** The upload's size, for the answer's Range header. */
  readonly size: number;
  constructor(expectedStart: number, got: number) {
    super(`chunk starts at byte ${got}, but the upload has ${expectedStart} bytes`);
    this.name = 'UploadRangeError';
    this.size = expectedStart;
  }
}

export interface UploadsOptions {
  /** The clock of the idle rule, in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** What `purgeIdle` removed. */
export interface PurgedUploads {
  sessions: number;
  /** Bytes the sessions had received. */
  bytes: number;
}

interface LocalActivity {
  /** Requests on the session on this replica now. */
  inFlight: number;
  /** When this replica's last request on it ended (or the current one began). */
  lastUsedMs: number;
  /** The newest last activity known to be in the storage (read or written here). */
  sharedMs: number;
}

/**
 * The shared last activity is written at most this often per session and replica: GCS allows
 * about one write a second to one object, and a client's requests on a session come back to
 * back. Idle time is then judged up to this much early, which the TTL's margin over the
 * receive timeout (config.ts: at least a second) covers.
 */
export const ACTIVITY_WRITE_INTERVAL_MS = 1000;

export class Uploads {
  private readonly store: UploadStore;
  private readonly now: () => number;
  private readonly activity = new Map<string, LocalActivity>();
  /** Sessions this replica's purge has judged idle and is removing: no request may open them. */
  private readonly dropping = new Set<string>();
  /** Appends to one session run one at a time, in arrival order. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(store: UploadStore, options: UploadsOptions = {}) {
    this.store = store;
    this.now = options.now ?? Date.now;
  }

  /** A new session, with the request that started it in flight: `close` it when that request ends. */
  async start(name: string): Promise<UploadSession> {
    const session = { id: randomUUID(), name, size: 0 };
    this.markInFlight(session.id, this.now());
    try {
      await this.store.createUpload(session.id, name, this.now());
    } catch (error) {
      this.release(session.id);
      throw error;
    }
    return session;
  }

  /** The session a request names, now with that request in flight; throws UploadNotFoundError. `close` it when the request ends. */
  async open(id: string, name: string): Promise<UploadSession> {
    if (!isUploadId(id)) throw new UploadNotFoundError(id);
    const state = await this.store.uploadState(id);
    // Checked and marked in one synchronous step after the read, against the purge's decision.
    if (!state || state.name !== name || this.dropping.has(id)) throw new UploadNotFoundError(id);
    this.markInFlight(id, state.lastActivityMs);
    try {
      await this.recordActivity(id);
    } catch (error) {
      await this.close({ id, name, size: state.size });
      throw error;
    }
    return { id, name, size: state.size };
  }

  /**
   * The request that opened or started the session ended; its idle time starts now, for every
   * replica (the shared last activity is written before the local count drops). Harmless after
   * `finish`. A failure to write the activity does not fail the request: the activity written
   * when it began stands, and the TTL exceeds any request's receive time.
   */
  async close(session: UploadSession): Promise<void> {
    try {
      await this.recordActivity(session.id);
    } catch {
      // The activity the request wrote when it began stands; the TTL is far longer than a request.
    } finally {
      this.release(session.id);
    }
  }

  /** Sessions with a request in flight on this replica or used by it recently (for tests). */
  get localSessions(): number {
    return this.activity.size;
  }

  /**
   * Drops every session in the shared storage with no request in flight here whose last activity
   * (written by whichever replica served it) is more than `idleMs` ago, with its bytes. A session
   * is judged on fresh state read just before, and judged and marked dropped in one synchronous
   * step, so no request on this replica can open it in between. Orphans (chunks a late append
   * left behind a purged session) go the same way.
   */
  async purgeIdle(idleMs: number): Promise<PurgedUploads> {
    const candidates: string[] = [];
    for await (const state of this.store.listUploads()) {
      if (this.now() - state.lastActivityMs > idleMs) candidates.push(state.id);
    }
    let sessions = 0;
    let bytes = 0;
    for (const id of candidates) {
      const fresh = await this.store.uploadState(id);
      const now = this.now();
      const local = this.activity.get(id);
      if (local && (local.inFlight > 0 || now - local.lastUsedMs <= idleMs)) continue;
      if (fresh && now - fresh.lastActivityMs <= idleMs) continue;
      if (this.dropping.has(id)) continue;
      this.dropping.add(id);
      try {
        bytes += await this.store.deleteUpload(id);
        if (fresh) sessions++;
      } finally {
        this.dropping.delete(id);
        this.activity.delete(id);
        this.locks.delete(id);
      }
    }
    // Sessions finished or purged by another replica leave local entries behind; forget old ones.
    for (const [id, local] of this.activity) {
      if (local.inFlight > 0 || this.now() - local.lastUsedMs <= idleMs) continue;
      this.activity.delete(id);
      this.locks.delete(id);
    }
    return { sessions, bytes };
  }

  /**
   * Appends a chunk; `start`, when the client sent Content-Range, must be where the upload ends.
   * Without it the chunk goes where the upload ends now. Updates `session.size`.
   */
  append(session: UploadSession, body: Readable, start?: number): Promise<UploadSession> {
    return this.serialised(session.id, async () => {
      let offset = start;
      if (offset === undefined) {
        const state = await this.store.uploadState(session.id);
        if (!state) throw new UploadNotFoundError(session.id);
        offset = state.size;
      }
      try {
        session.size = await this.store.appendUpload(session.id, offset, body);
      } catch (error) {
        if (error instanceof UploadOffsetError) {
          session.size = error.size;
          throw new UploadRangeError(error.size, offset);
        }
        if (error instanceof UploadGoneError) throw new UploadNotFoundError(session.id);
        throw error;
      }
      return session;
    });
  }

  /** The whole upload, chunk after chunk, for verification and storage. */
  contents(session: UploadSession): Readable {
    return this.store.readUpload(session.id);
  }

  /** Ends the session for every replica, removing its bytes. */
  async finish(session: UploadSession): Promise<void> {
    this.locks.delete(session.id);
    this.activity.delete(session.id);
    await this.store.deleteUpload(session.id);
  }

  private markInFlight(id: string, sharedMs: number): void {
    const local = this.activity.get(id) ?? { inFlight: 0, lastUsedMs: this.now(), sharedMs };
    local.inFlight++;
    local.lastUsedMs = this.now();
    local.sharedMs = Math.max(local.sharedMs, sharedMs);
    this.activity.set(id, local);
  }

  /** Writes the session's last activity, unless one was written less than ACTIVITY_WRITE_INTERVAL_MS ago. */
  private async recordActivity(id: string): Promise<void> {
    const now = this.now();
    const local = this.activity.get(id);
    if (local && now - local.sharedMs < ACTIVITY_WRITE_INTERVAL_MS) return;
    await this.store.touchUpload(id, now);
    if (local) local.sharedMs = Math.max(local.sharedMs, now);
  }

  private release(id: string): void {
    const local = this.activity.get(id);
    if (!local) return;
    local.inFlight = Math.max(0, local.inFlight - 1);
    local.lastUsedMs = this.now();
  }

  private serialised<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.locks.set(id, next.catch(() => {}));
    return next;
  }
}
