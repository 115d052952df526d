// Upload sessions on the GCS backend (the contract: upload-store.ts), in the bucket so that every
// replica shares them:
//
//   uploads/<id>/session            the record; custom metadata `name` and `lastActivityMs`
//   uploads/<id>/chunks/<offset>    one object per chunk, named by its start offset
//
// GCS objects are immutable, so a session is never appended to in place: each PATCH becomes one
// chunk object, staged and verified like a blob and then copied to its offset's name with
// ifGenerationMatch=0 (gcs.ts putObjectOnce). The service lets exactly one copy create a name,
// which makes "first append at this offset wins" exact across replicas. The session's size is
// the end of its chunk chain, read from a prefix listing (strongly consistent in GCS); last
// activity is a metadata patch on the record, with the serving replica's clock. Finishing streams
// the chunks in order, each pinned to the generation listed, into putBlob.
import { Readable } from 'node:stream';
import type { Bucket, File, FileMetadata } from '@google-cloud/storage';
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

const PREFIX = 'uploads/';
const PAGE_SIZE = 1000;

/** What the upload store uses of the GCS backend (gcs.ts). */
export interface GcsUploadDeps {
  bucket: Bucket;
  /** Creates `name` from `source` unless it exists (`taken`); an empty source creates nothing. */
  putObjectOnce(name: string, source: Readable): Promise<{ size: number; taken: boolean }>;
  /** The object's bytes, resumed and checked as blob reads are. */
  read(name: string, metadata: FileMetadata): Readable;
  /** The HTTP status of a failed call, when the service answered. */
  status(error: unknown): number | undefined;
  /** A GcsStorageError for a failed call. */
  failure(operation: string, object: string, cause: unknown): Error;
}

/** A session's objects from one listing. */
interface Listed {
  id: string;
  record: File | undefined;
  chunks: Map<number, File>;
  others: File[];
}

export class GcsUploadStore implements UploadStore {
  private readonly deps: GcsUploadDeps;

  constructor(deps: GcsUploadDeps) {
    this.deps = deps;
  }

  async createUpload(id: string, name: string, nowMs: number): Promise<void> {
    const record = this.deps.bucket.file(recordObject(id));
    try {
      await record.save(JSON.stringify({ name }), {
        resumable: false,
        validation: false,
        metadata: { contentType: 'application/json', metadata: { name, lastActivityMs: String(nowMs) } },
        preconditionOpts: { ifGenerationMatch: 0 },
      });
    } catch (error) {
      throw this.deps.failure('upload', record.name, error);
    }
  }

  async uploadState(id: string): Promise<UploadState | null> {
    if (!isUploadId(id)) return null;
    const listed = await this.listSession(id);
    return listed.record ? stateOf(listed) : null;
  }

  appendUpload(id: string, offset: number, body: Readable): Promise<number> {
    return appendExclusively(this, id, offset, () => this.deps.putObjectOnce(`${PREFIX}${id}/chunks/${chunkName(offset)}`, body));
  }

  async touchUpload(id: string, nowMs: number): Promise<void> {
    const record = this.deps.bucket.file(recordObject(id));
    try {
      await record.setMetadata({ metadata: { lastActivityMs: String(nowMs) } });
    } catch (error) {
      if (this.deps.status(error) === 404) return;
      throw this.deps.failure('metadata update', record.name, error);
    }
  }

  readUpload(id: string): Readable {
    const self = this;
    return Readable.from(
      (async function* () {
        const listed = await self.listSession(id);
        if (!listed.record) throw new UploadGoneError(id);
        const { chain } = chunkChain(chunksOf(listed));
        for (const chunk of chain) {
          const file = listed.chunks.get(chunk.offset)!;
          try {
            yield* self.deps.read(file.name, file.metadata);
          } catch (error) {
            // Pinned to the listed generation: a chunk deleted since (the session purged) is a 404.
            if (self.deps.status(error) === 404 || self.deps.status((error as { cause?: unknown }).cause) === 404) throw new UploadGoneError(id);
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
    for (const file of [...(listed.record ? [listed.record] : []), ...listed.chunks.values(), ...listed.others]) {
      try {
        await file.delete();
        if (file !== listed.record) bytes += Number(file.metadata.size ?? 0);
      } catch (error) {
        if (this.deps.status(error) !== 404) throw this.deps.failure('delete', file.name, error);
      }
    }
    return bytes;
  }

  async *listUploads(): AsyncIterable<UploadState> {
    // Names sort by session id, so each session's objects come together.
    let current: Listed | undefined;
    for await (const file of this.listPrefix(PREFIX)) {
      const id = file.name.slice(PREFIX.length).split('/')[0]!;
      if (!isUploadId(id)) continue;
      if (current && current.id !== id) {
        yield stateOf(current);
        current = undefined;
      }
      current ??= { id, record: undefined, chunks: new Map(), others: [] };
      addTo(current, file);
    }
    if (current) yield stateOf(current);
  }

  private async listSession(id: string): Promise<Listed> {
    assertUploadId(id);
    const listed: Listed = { id, record: undefined, chunks: new Map(), others: [] };
    for await (const file of this.listPrefix(`${PREFIX}${id}/`)) addTo(listed, file);
    return listed;
  }

  private async *listPrefix(prefix: string): AsyncGenerator<File> {
    let pageToken: string | undefined;
    do {
      let files: File[];
      try {
        const [page, next] = await this.deps.bucket.getFiles({ prefix, autoPaginate: false, maxResults: PAGE_SIZE, ...(pageToken !== undefined ? { pageToken } : {}) });
        files = page;
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } catch (error) {
        throw this.deps.failure('list', prefix, error);
      }
      yield* files;
    } while (pageToken !== undefined);
  }
}

function recordObject(id: string): string {
  assertUploadId(id);
  return `${PREFIX}${id}/session`;
}

function addTo(listed: Listed, file: File): void {
  const rest = file.name.slice(`${PREFIX}${listed.id}/`.length);
  const offset = rest.startsWith('chunks/') ? chunkOffset(rest.slice('chunks/'.length)) : null;
  if (rest === 'session') listed.record = file;
  else if (offset !== null) listed.chunks.set(offset, file);
  else listed.others.push(file);
}

function chunksOf(listed: Listed): StoredChunk[] {
  return [...listed.chunks].map(([offset, file]) => ({ offset, size: Number(file.metadata.size ?? 0) }));
}

function stateOf(listed: Listed): UploadState {
  const { size } = chunkChain(chunksOf(listed));
  const custom = (listed.record?.metadata.metadata ?? {}) as Record<string, unknown>;
  const recorded = Number(custom.lastActivityMs);
  if (listed.record && Number.isFinite(recorded)) return { id: listed.id, name: String(custom.name ?? ''), size, lastActivityMs: recorded };
  // No record (an orphan: chunks a late append left after a purge) or no readable time: its age
  // is that of its newest object; unknown is never old enough to purge.
  let newest = Number.NEGATIVE_INFINITY;
  for (const file of [...listed.chunks.values(), ...listed.others, ...(listed.record ? [listed.record] : [])]) {
    const written = Date.parse(String(file.metadata.updated ?? file.metadata.timeCreated ?? ''));
    newest = Math.max(newest, Number.isNaN(written) ? Number.POSITIVE_INFINITY : written);
  }
  return { id: listed.id, name: listed.record ? String(custom.name ?? '') : '', size, lastActivityMs: newest === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : newest };
}
