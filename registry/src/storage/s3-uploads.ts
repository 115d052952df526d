// Upload sessions on the S3 backend (the contract: upload-store.ts), in the bucket so that every
// replica shares them:
//
//   <prefix>/uploads/<id>/session            the record: JSON {name, lastActivityMs}
//   <prefix>/uploads/<id>/chunks/<offset>    one object per chunk, named by its start offset
//
// A chunk's name is taken only by an exclusive create (PutObject with If-None-Match: *, which
// radosgw and AWS S3 honour; s3.ts putObjectOnce), so of two appends racing for one offset
// exactly one wins. A chunk above the part size is staged (multipart) and verified first, then
// its name is claimed by an empty object and the staged bytes copied over the claim; a claim is
// empty, so the chain (chunkChain ignores empty chunks) never reads one, and nobody else can
// write a claimed name. While a claim waits for its copy, an append at its offset is refused
// with the size before it (the client's retry is refused until the copy lands); a writer that
// dies between claim and copy leaves the offset blocked until the idle session is purged, never
// a wrong byte in the chain. Above CopyObject's 5 GiB the copy goes range by range (UploadPartCopy)
// and completes with If-Match on the claim. The session's size is the end of its chunk chain, from a prefix listing
// (strongly consistent in S3 and radosgw). Last activity is a rewrite of the record with If-Match
// on the ETag just read, so a touch never brings back a session deleted meanwhile (a touch that
// loses to a concurrent touch is dropped: that one is as recent).
import { Readable } from 'node:stream';
import type { _Object } from '@aws-sdk/client-s3';
import {
  appendExclusively,
  assertUploadId,
  chunkChain,
  chunkName,
  chunkOffset,
  isUploadId,
  UploadGoneError,
  UploadOffsetError,
  type StoredChunk,
  type UploadState,
  type UploadStore,
} from './upload-store.ts';

const UPLOADS = 'uploads/';

/** What the upload store uses of the S3 backend (s3.ts); keys are relative to the backend's prefix. */
export interface S3UploadDeps {
  /** Creates `key` from `source` unless it exists (`taken`); an empty source creates nothing. */
  putObjectOnce(key: string, source: Readable): Promise<{ size: number; taken: boolean }>;
  /** Writes a small JSON object if the condition holds; false when the service refused it (412/409). */
  putJson(key: string, value: unknown, condition: { ifNoneMatch: '*' } | { ifMatch: string }): Promise<boolean>;
  /** A small JSON object and the ETag of that body, or null when there is none. */
  getJson<T>(key: string): Promise<{ value: T; etag: string } | null>;
  /** The object's bytes, pinned to `etag` and resumed as blob reads are. */
  read(key: string, size: number, etag: string | undefined): Readable;
  /** The objects under `prefix`, a page at a time, keys relative to the backend's prefix. */
  list(prefix: string): AsyncIterable<_Object & { Key: string }>;
  /** Deletes `key` whether or not it exists. */
  remove(key: string): Promise<void>;
  /** The HTTP status of a failed call, when the service answered. */
  status(error: unknown): number | undefined;
}

interface SessionRecord {
  name: string;
  lastActivityMs: number;
}

/** A session's objects from one listing. */
interface Listed {
  id: string;
  record: _Object | undefined;
  chunks: Map<number, _Object>;
  others: _Object[];
}

export class S3UploadStore implements UploadStore {
  private readonly deps: S3UploadDeps;

  constructor(deps: S3UploadDeps) {
    this.deps = deps;
  }

  async createUpload(id: string, name: string, nowMs: number): Promise<void> {
    const key = recordKey(id);
    const record: SessionRecord = { name, lastActivityMs: nowMs };
    if (await this.deps.putJson(key, record, { ifNoneMatch: '*' })) return;
    // Ids are fresh UUIDs: a taken one is our own retried write whose first attempt succeeded unseen.
    const stored = await this.deps.getJson<SessionRecord>(key);
    if (stored?.value.name !== name || stored.value.lastActivityMs !== nowMs) throw new Error(`upload ${id}: the session record exists already`);
  }

  async uploadState(id: string): Promise<UploadState | null> {
    if (!isUploadId(id)) return null;
    const record = await this.deps.getJson<SessionRecord>(recordKey(id));
    if (!record) return null;
    const listed = await this.listSession(id);
    return { id, name: String(record.value.name ?? ''), size: chainOf(listed).size, lastActivityMs: Number(record.value.lastActivityMs) };
  }

  appendUpload(id: string, offset: number, body: Readable): Promise<number> {
    return appendExclusively(this, id, offset, () => this.deps.putObjectOnce(`${UPLOADS}${id}/chunks/${chunkName(offset)}`, body));
  }

  async touchUpload(id: string, nowMs: number): Promise<void> {
    const key = recordKey(id);
    const record = await this.deps.getJson<SessionRecord>(key);
    if (!record) return;
    await this.deps.putJson(key, { name: record.value.name, lastActivityMs: nowMs } satisfies SessionRecord, { ifMatch: record.etag });
  }

  readUpload(id: string): Readable {
    const self = this;
    return Readable.from(
      (async function* () {
        if (!isUploadId(id)) throw new UploadGoneError(id);
        const listed = await self.listSession(id);
        if (!listed.record) throw new UploadGoneError(id);
        for (const chunk of chainOf(listed).chain) {
          const object = listed.chunks.get(chunk.offset)!;
          try {
            yield* self.deps.read(object.Key!, chunk.size, object.ETag);
          } catch (error) {
            // Pinned to the listed ETag: a chunk deleted since (the session purged) is a 404.
            const status = self.deps.status(error) ?? self.deps.status((error as { cause?: unknown }).cause);
            if (status === 404 || status === 412) throw new UploadGoneError(id);
            throw error;
          }
        }
      })(),
      { objectMode: false },
    );
  }

  async deleteUpload(id: string): Promise<number> {
    assertUploadId(id);
    const listed = await this.listSession(id);
    let bytes = 0;
    // The record first: from then on the session is unknown to every replica.
    if (listed.record) await this.deps.remove(listed.record.Key!);
    for (const object of [...listed.chunks.values(), ...listed.others]) {
      await this.deps.remove(object.Key!);
      bytes += object.Size ?? 0;
    }
    return bytes;
  }

  async *listUploads(): AsyncIterable<UploadState> {
    // Keys sort by session id, so each session's objects come together.
    let current: Listed | undefined;
    for await (const object of this.deps.list(UPLOADS)) {
      const id = object.Key.slice(UPLOADS.length).split('/')[0]!;
      if (!isUploadId(id)) continue;
      if (current && current.id !== id) {
        const state = await this.stateOf(current);
        if (state) yield state;
        current = undefined;
      }
      current ??= { id, record: undefined, chunks: new Map(), others: [] };
      addTo(current, object);
    }
    if (current) {
      const state = await this.stateOf(current);
      if (state) yield state;
    }
  }

  /** A listed session's state; its record is read for the name and last activity. */
  private async stateOf(listed: Listed): Promise<UploadState | null> {
    const { size } = chainOf(listed);
    if (listed.record) {
      const record = await this.deps.getJson<SessionRecord>(listed.record.Key!);
      // Deleted since the listing: gone, its chunks going with it.
      if (!record) return null;
      const lastActivityMs = Number(record.value.lastActivityMs);
      return { id: listed.id, name: String(record.value.name ?? ''), size, lastActivityMs: Number.isFinite(lastActivityMs) ? lastActivityMs : newestWrite(listed) };
    }
    // An orphan (chunks a late append left after a purge): its age is that of its newest object.
    return { id: listed.id, name: '', size, lastActivityMs: newestWrite(listed) };
  }

  private async listSession(id: string): Promise<Listed> {
    assertUploadId(id);
    const listed: Listed = { id, record: undefined, chunks: new Map(), others: [] };
    for await (const object of this.deps.list(`${UPLOADS}${id}/`)) addTo(listed, object);
    return listed;
  }
}

function recordKey(id: string): string {
  assertUploadId(id);
  return `${UPLOADS}${id}/session`;
}

function addTo(listed: Listed, object: _Object & { Key: string }): void {
  const rest = object.Key.slice(`${UPLOADS}${listed.id}/`.length);
  const offset = rest.startsWith('chunks/') ? chunkOffset(rest.slice('chunks/'.length)) : null;
  if (rest === 'session') listed.record = object;
  else if (offset !== null) listed.chunks.set(offset, object);
  else listed.others.push(object);
}

function chainOf(listed: Listed): { chain: StoredChunk[]; size: number } {
  return chunkChain([...listed.chunks].map(([offset, object]) => ({ offset, size: object.Size ?? 0 })));
}

/** The newest LastModified of the session's objects; unknown is never old enough to purge. */
function newestWrite(listed: Listed): number {
  let newest = Number.NEGATIVE_INFINITY;
  for (const object of [...listed.chunks.values(), ...listed.others, ...(listed.record ? [listed.record] : [])]) {
    newest = Math.max(newest, object.LastModified?.getTime() ?? Number.POSITIVE_INFINITY);
  }
  return newest === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : newest;
}
