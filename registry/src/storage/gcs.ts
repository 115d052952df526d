// Google Cloud Storage backend, as Nixery has it: layers, config blobs, manifests and cache
// documents in one bucket, so that any number of registry replicas share them.
//
// Layout: blobs/sha256/<hex> (content type in the object's contentType), documents/<key>.json,
// staging/<uuid> for uploads in flight. A blob is uploaded to a staging name while it is hashed,
// checked against the CRC32C and MD5 the service computed, and only then copied server-side to
// its digest with ifGenerationMatch=0, so a partial or unverified blob is never visible under a
// digest and a second writer of the same digest changes nothing. A staging object exists only
// once its upload completed (a resumable session creates nothing before), until the copy and
// delete that follow; one left longer is a crashed writer's. sweepStaging deletes those older
// than the staging TTL by their `updated` time from a paged prefix listing, at start-up and,
// through service/purge.ts, while running, skipping the names this process is writing.
// Upload sessions live under uploads/ (gcs-uploads.ts); their chunks are staged the same way.
//
// Retries: the client runs with IdempotencyStrategy.RetryAlways. Every write here is safe to
// repeat (fresh staging names, ifGenerationMatch=0 on the digest, whole-document replacement),
// and the library's default strategy both refuses to retry writes without preconditions and
// does so by flipping `autoRetry` on the shared Storage object, which races between concurrent
// calls. Uploads above the resumable threshold go through a resumable session with a chunk size,
// the only mode in which the library can resend a chunk the service did not persist.
import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CRC32C, IdempotencyStrategy, RETRYABLE_ERR_FN_DEFAULT, Storage, type Bucket, type File, type FileMetadata } from '@google-cloud/storage';
import { createLogger, type Logger } from '../log/logger.ts';
import {
  assertDocumentKey,
  BlobNotFoundError,
  DigestMismatchError,
  sha256Hex,
  StorageUnavailableError,
  type BlobDelivery,
  assertLeaseName,
  type BlobInfo,
  type ByteRange,
  type LeaseRecord,
  type StoredLease,
  type PutBlobOptions,
  type PutBlobResult,
  type StagingSweepOptions,
  type StorageBackend,
  type StoredObject,
  type SweptStaging,
  DEFAULT_STAGING_TTL_MS,
  MAX_STAGING_SWEEP,
} from './backend.ts';
import { GcsIntegrityError, GcsShortReadError, GcsStallError, resumingRead } from './gcs-download.ts';
import { publicObjectUrl, signedGetUrl, type SigningKey } from './gcs-signer.ts';
import { GcsUploadStore } from './gcs-uploads.ts';
import type { UploadStore } from './upload-store.ts';

export { GcsIntegrityError } from './gcs-download.ts';

export type GcsRedirectMode = 'signed' | 'public' | 'stream';

/** Nixery's signed URLs live five minutes: long enough to start a download, short if leaked. */
export const DEFAULT_SIGNED_URL_EXPIRY_SECONDS = 300;
/** The library's Bucket#upload switches to resumable uploads at about this size too. */
export const DEFAULT_RESUMABLE_THRESHOLD_BYTES = 8 * 1024 * 1024;
/** Google recommends chunks of at least 8 MiB; they must be multiples of 256 KiB. */
export const DEFAULT_CHUNK_SIZE_BYTES = 8 * 1024 * 1024;
const CHUNK_UNIT = 256 * 1024;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** Objects per page of a staging listing (the service's maximum). */
const STAGING_PAGE_SIZE = 1000;

export interface GcsRetryOptions {
  /** Retries of one request (the library's maxRetries). */
  maxRetries?: number;
  /** Upper bound of one back-off, in seconds; the library cannot go below 1. */
  maxRetryDelaySeconds?: number;
  /** Budget for one operation with its retries, in seconds. */
  totalTimeoutSeconds?: number;
  /** Downloads: first back-off before a Range resume, doubled per attempt without progress. */
  resumeDelayMs?: number;
  /** Downloads: attempts without progress before giving up. */
  maxResumes?: number;
}

export interface GcsStorageOptions extends StagingSweepOptions {
  bucket: string;
  /** A service account key file; signing needs one. Requests authenticate through application default credentials. */
  credentialsFile?: string;
  /** Unset: signed when the key can sign, else stream. */
  redirect?: GcsRedirectMode;
  signedUrlExpirySeconds?: number;
  resumableThresholdBytes?: number;
  chunkSizeBytes?: number;
  stallTimeoutMs?: number;
  retry?: GcsRetryOptions;
  log?: Logger;
}

/** A failed call to the service, with what was being done to which object. */
export class GcsStorageError extends Error {
  readonly code = 'GCS_ERROR';
  readonly operation: string;
  readonly bucket: string;
  readonly object: string | undefined;
  /** The HTTP status the service answered, when it answered. */
  readonly status: number | undefined;
  constructor(operation: string, bucket: string, object: string | undefined, cause: unknown) {
    const status = httpStatus(cause);
    super(
      `GCS ${operation} of gs://${bucket}${object !== undefined ? `/${object}` : ''} failed` +
        `${status !== undefined ? ` (HTTP ${status})` : ''}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
    this.name = 'GcsStorageError';
    this.operation = operation;
    this.bucket = bucket;
    this.object = object;
    this.status = status;
  }
}

interface ServiceAccountKey {
  type?: string;
  client_email?: string;
  private_key?: string;
}

export class GcsStorage implements StorageBackend {
  readonly bucketName: string;
  private readonly options: GcsStorageOptions;
  private readonly storage: Storage;
  private readonly bucket: Bucket;
  private readonly log: Logger;
  private readonly resumableThreshold: number;
  private readonly chunkSize: number;
  private readonly stallTimeoutMs: number;
  private readonly expirySeconds: number;
  private signingKey: SigningKey | undefined;
  private mode: GcsRedirectMode;
  private readonly stagingTtlMs: number;
  private readonly now: () => number;
  /** Names of the staging objects this process is writing now: never swept. */
  private readonly writing = new Set<string>();
  readonly uploads: UploadStore;

  constructor(options: GcsStorageOptions) {
    this.options = options;
    this.bucketName = options.bucket;
    this.log = options.log ?? createLogger({ base: { component: 'storage' } });
    this.resumableThreshold = options.resumableThresholdBytes ?? DEFAULT_RESUMABLE_THRESHOLD_BYTES;
    this.chunkSize = options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES;
    if (this.chunkSize < CHUNK_UNIT || this.chunkSize % CHUNK_UNIT !== 0) {
      throw new RangeError(`GCS upload chunks must be a multiple of ${CHUNK_UNIT} bytes, not ${this.chunkSize}`);
    }
    this.stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.expirySeconds = options.signedUrlExpirySeconds ?? DEFAULT_SIGNED_URL_EXPIRY_SECONDS;
    this.mode = options.redirect ?? 'stream';
    this.stagingTtlMs = options.stagingTtlMs ?? DEFAULT_STAGING_TTL_MS;
    this.now = options.now ?? Date.now;
    const retry = options.retry ?? {};
    // Requests authenticate through application default credentials, which read
    // GOOGLE_APPLICATION_CREDENTIALS themselves (the variable credentialsFile comes from);
    // handing the library the key file (keyFilename, credentials) prints a deprecation warning
    // on stderr, so that is done only for a file the environment does not name.
    // STORAGE_EMULATOR_HOST, the library's own variable, points it at an emulator and turns
    // authentication off (useAuthWithCustomEndpoint is false unless set).
    const emulated = process.env.STORAGE_EMULATOR_HOST !== undefined;
    const keyFileForLibrary =
      options.credentialsFile !== undefined && options.credentialsFile !== process.env.GOOGLE_APPLICATION_CREDENTIALS && !emulated
        ? { keyFilename: options.credentialsFile }
        : {};
    this.storage = new Storage({
      ...keyFileForLibrary,
      retryOptions: {
        autoRetry: true,
        maxRetries: retry.maxRetries ?? 5,
        maxRetryDelay: Math.max(1, retry.maxRetryDelaySeconds ?? 32),
        retryDelayMultiplier: 2,
        totalTimeout: retry.totalTimeoutSeconds ?? 600,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
        retryableErrorFn: isTransient,
      },
    });
    this.bucket = this.storage.bucket(options.bucket);
    this.uploads = new GcsUploadStore({
      bucket: this.bucket,
      putObjectOnce: (name, source) => this.putObjectOnce(name, source),
      read: (name, metadata) => this.read(name, metadata),
      status: httpStatus,
      failure: (operation, object, cause) => new GcsStorageError(operation, this.bucketName, object, cause),
    });
  }

  get description(): string {
    const delivery = { signed: 'V4 signed URL redirects', public: 'public URL redirects', stream: 'streamed through the registry' }[this.mode];
    return `gcs (gs://${this.bucketName} at ${this.endpoint}, blobs ${delivery})`;
  }

  /** The API endpoint in use: Google's, or STORAGE_EMULATOR_HOST. */
  get endpoint(): string {
    return this.storage.apiEndpoint;
  }

  /** How blob GETs are answered, settled by init(). */
  get redirectMode(): GcsRedirectMode {
    return this.mode;
  }

  async init(): Promise<void> {
    const key = this.options.credentialsFile !== undefined ? await readKeyFile(this.options.credentialsFile) : undefined;
    this.signingKey = key;
    const requested = this.options.redirect;
    if (requested === 'signed' && !key) {
      throw new StorageUnavailableError(
        'NIXERY_GCS_REDIRECT=signed: signing URLs needs a service account key with a private key in GOOGLE_APPLICATION_CREDENTIALS; ' +
          'without one, use NIXERY_GCS_REDIRECT=stream (or public for a publicly readable bucket)',
      );
    }
    this.mode = requested ?? (key ? 'signed' : 'stream');

    try {
      await this.bucket.getFiles({ prefix: 'staging/', autoPaginate: false, maxResults: 1 });
    } catch (error) {
      throw this.unavailable('list', error);
    }
    // Reading is not enough to serve: a registry that cannot write fails its first build, so
    // find out now.
    const probe = this.bucket.file(`staging/probe-${randomUUID()}`);
    try {
      await probe.save('', { resumable: false, validation: false, preconditionOpts: { ifGenerationMatch: 0 }, metadata: { contentType: 'text/plain' } });
      await probe.delete({ ignoreNotFound: true });
    } catch (error) {
      throw this.unavailable('write', error);
    }
    const swept = await this.sweepStaging();
    if (swept.objects > 0) this.log.info('removed stale GCS staging objects', { bucket: this.bucketName, removed: swept.objects, bytes: swept.bytes });
    this.log.info('gcs storage ready', { bucket: this.bucketName, endpoint: this.endpoint, blobs: this.mode, signedUrlExpirySeconds: this.expirySeconds });
  }

  async putBlob(source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult> {
    const staging = this.bucket.file(`staging/${randomUUID()}`);
    this.writing.add(staging.name);
    try {
      return await this.putStaged(staging, source, options);
    } finally {
      this.writing.delete(staging.name);
    }
  }

  private async putStaged(staging: File, source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult> {
    const local = new LocalHashes();
    let stored: FileMetadata;
    try {
      stored = await this.upload(staging, source, local, options.contentType);
    } catch (error) {
      await this.removeQuietly(staging);
      if (error instanceof SourceError) throw error.cause;
      throw error instanceof GcsStorageError ? error : new GcsStorageError('upload', this.bucketName, staging.name, error);
    }
    const stagingFile = this.bucket.file(staging.name, { generation: Number(stored.generation) });
    try {
      verifyUpload(staging.name, stored, local);
      const digest = `sha256:${local.sha256.digest('hex')}`;
      if (options.expectedDigest !== undefined && options.expectedDigest !== digest) {
        throw new DigestMismatchError(options.expectedDigest, digest);
      }
      const target = this.bucket.file(blobObject(digest));
      let created = true;
      try {
        // Server-side; ifGenerationMatch=0 keeps the first complete copy of a digest.
        await stagingFile.copy(target, { preconditionOpts: { ifGenerationMatch: 0 } });
      } catch (error) {
        if (httpStatus(error) !== 412) throw new GcsStorageError('copy', this.bucketName, target.name, error);
        created = false;
      }
      return { digest, size: local.size, created };
    } finally {
      await this.removeQuietly(stagingFile);
    }
  }

  // ---- Upload sessions (gcs-uploads.ts) ----

  /**
   * Creates the object `name` from `source` unless that name exists, for upload chunks: staged,
   * verified and copied as putBlob does, the copy with ifGenerationMatch=0 so that of two writers
   * exactly one creates it. `taken`: another writer's object has the name. An empty source
   * creates nothing (an empty chunk would take a name that the next chunk needs).
   */
  private async putObjectOnce(name: string, source: Readable): Promise<{ size: number; taken: boolean }> {
    const staging = this.bucket.file(`staging/${randomUUID()}`);
    this.writing.add(staging.name);
    try {
      const local = new LocalHashes();
      let stored: FileMetadata;
      try {
        stored = await this.upload(staging, source, local, 'application/octet-stream');
      } catch (error) {
        await this.removeQuietly(staging);
        if (error instanceof SourceError) throw error.cause;
        throw error instanceof GcsStorageError ? error : new GcsStorageError('upload', this.bucketName, staging.name, error);
      }
      const stagingFile = this.bucket.file(staging.name, { generation: Number(stored.generation) });
      try {
        verifyUpload(staging.name, stored, local);
        if (local.size === 0) return { size: 0, taken: false };
        try {
          await stagingFile.copy(this.bucket.file(name), { preconditionOpts: { ifGenerationMatch: 0 } });
          return { size: local.size, taken: false };
        } catch (error) {
          if (httpStatus(error) !== 412) throw new GcsStorageError('copy', this.bucketName, name, error);
          // A retried copy whose first attempt succeeded unseen finds its own bytes there; the
          // same bytes from another writer are as good (the chain holds what the client sent).
          const existing = await this.metadata(name);
          const ours = existing !== null && Number(existing.size) === local.size && existing.crc32c === local.crc32cBase64;
          return { size: local.size, taken: !ours };
        }
      } finally {
        await this.removeQuietly(stagingFile);
      }
    } finally {
      this.writing.delete(staging.name);
    }
  }

  // ---- Blobs and documents ----

  async statBlob(digest: string): Promise<BlobInfo | null> {
    if (sha256Hex(digest) === null) return null;
    const metadata = await this.metadata(blobObject(digest));
    return metadata ? blobInfo(digest, metadata) : null;
  }

  async readBlob(digest: string): Promise<Buffer> {
    const hex = sha256Hex(digest);
    if (hex === null) throw new BlobNotFoundError(digest);
    const name = blobObject(digest);
    const metadata = await this.metadata(name);
    if (!metadata) throw new BlobNotFoundError(digest);
    return collect(this.read(name, metadata, undefined, hex));
  }

  async deliverBlob(digest: string): Promise<BlobDelivery | null> {
    const hex = sha256Hex(digest);
    if (hex === null) return null;
    const name = blobObject(digest);
    const metadata = await this.metadata(name);
    if (!metadata) return null;
    const info = blobInfo(digest, metadata);
    switch (this.mode) {
      case 'signed':
        return {
          kind: 'redirect',
          info,
          url: signedGetUrl({ key: this.signingKey!, endpoint: this.endpoint, bucket: this.bucketName, object: name, expiresSeconds: this.expirySeconds }),
        };
      case 'public':
        return { kind: 'redirect', info, url: publicObjectUrl(this.endpoint, this.bucketName, name) };
      case 'stream':
        // A whole blob is checked against its digest before its last bytes are passed on.
        return { kind: 'stream', info, open: (range?: ByteRange) => this.read(name, metadata, range, range ? undefined : hex) };
    }
  }

  async deleteBlob(digest: string): Promise<boolean> {
    if (sha256Hex(digest) === null) return false;
    return this.remove(blobObject(digest));
  }

  async getDocument<T>(key: string): Promise<T | null> {
    const name = documentObject(key);
    const metadata = await this.metadata(name);
    if (!metadata) return null;
    const text = (await collect(this.read(name, metadata))).toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new GcsStorageError('parse', this.bucketName, name, cause);
    }
  }

  async putDocument(key: string, value: unknown): Promise<void> {
    const name = documentObject(key);
    const body = Buffer.from(JSON.stringify(value));
    const local = new LocalHashes();
    local.update(body);
    const file = this.bucket.file(name);
    try {
      // A single-request upload replaces the object atomically: readers see the old document
      // or the new one.
      // With the hashes in the metadata the service refuses bytes damaged on the way, and the
      // previous document stays.
      await file.save(body, {
        resumable: false,
        validation: false,
        metadata: { contentType: 'application/json', cacheControl: 'no-store', ...local.metadata() },
      });
    } catch (error) {
      throw new GcsStorageError('upload', this.bucketName, name, error);
    }
    verifyUpload(name, file.metadata, local);
  }

  async deleteDocument(key: string): Promise<boolean> {
    return this.remove(documentObject(key));
  }

  // ---------------------------------------------------------------------------------------------

  /** Uploads `source` to `file`, hashing it on the way; returns the service's metadata of the result. */
  private async upload(file: File, source: Readable | Buffer, local: LocalHashes, contentType: string): Promise<FileMetadata> {
    if (Buffer.isBuffer(source)) {
      local.update(source);
      if (source.length <= this.resumableThreshold) return this.uploadInOneRequest(file, source, contentType, local);
      return this.uploadResumable(file, Readable.from([source]), contentType);
    }
    // Read up to the threshold: a blob that ends before it goes in one request.
    const input = source[Symbol.asyncIterator]();
    const pull = async (): Promise<Buffer | undefined> => {
      let next: IteratorResult<unknown>;
      try {
        next = await input.next();
      } catch (error) {
        throw new SourceError(error);
      }
      if (next.done) return undefined;
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Buffer);
      local.update(chunk);
      return chunk;
    };
    try {
      const head: Buffer[] = [];
      let headSize = 0;
      while (headSize <= this.resumableThreshold) {
        const chunk = await pull();
        if (chunk === undefined) return await this.uploadInOneRequest(file, Buffer.concat(head), contentType, local);
        head.push(chunk);
        headSize += chunk.length;
      }
      async function* everything(): AsyncGenerator<Buffer> {
        yield* head;
        for (let chunk = await pull(); chunk !== undefined; chunk = await pull()) yield chunk;
      }
      return await this.uploadResumable(file, Readable.from(everything(), { objectMode: false }), contentType);
    } finally {
      if (!source.destroyed && !source.readableEnded) source.destroy();
    }
  }

  /** `local` has hashed all of `body`: the service checks the upload against it and refuses a mismatch. */
  private async uploadInOneRequest(file: File, body: Buffer, contentType: string, local: LocalHashes): Promise<FileMetadata> {
    try {
      await file.save(body, {
        resumable: false,
        validation: false,
        metadata: { contentType, ...local.metadata() },
        preconditionOpts: { ifGenerationMatch: 0 },
      });
      return file.metadata;
    } catch (error) {
      // A retry after a lost answer finds the staging object already there: ours, if it verifies.
      if (httpStatus(error) === 412) return this.existingMetadata(file);
      throw error;
    }
  }

  private async uploadResumable(file: File, body: Readable, contentType: string): Promise<FileMetadata> {
    const upload = file.createWriteStream({
      resumable: true,
      chunkSize: this.chunkSize,
      validation: false,
      metadata: { contentType },
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    try {
      await pipeline(body, upload);
      return file.metadata;
    } catch (error) {
      if (httpStatus(error) === 412) return this.existingMetadata(file);
      throw error;
    }
  }

  private async existingMetadata(file: File): Promise<FileMetadata> {
    const metadata = await this.metadata(file.name);
    if (!metadata) throw new GcsStorageError('upload', this.bucketName, file.name, new Error('the object is gone after a precondition failure'));
    return metadata;
  }

  private read(name: string, metadata: FileMetadata, range?: ByteRange, expectedSha256?: string): Readable {
    const size = Number(metadata.size);
    const file = this.bucket.file(name, { generation: Number(metadata.generation) });
    const retry = this.options.retry ?? {};
    const resumeDelayMs = retry.resumeDelayMs ?? 250;
    return resumingRead({
      object: name,
      start: range?.start ?? 0,
      end: range?.end ?? size - 1,
      stallTimeoutMs: this.stallTimeoutMs,
      maxResumes: retry.maxResumes ?? 5,
      retryDelayMs: (attempt) => Math.min(resumeDelayMs * 2 ** (attempt - 1), 8_000),
      isRetryable: (error) => error instanceof GcsStallError || error instanceof GcsShortReadError || isTransient(error),
      ...(expectedSha256 !== undefined ? { expectedSha256 } : {}),
      open: (start, end) => {
        const stream = file.createReadStream({ start, end, validation: false, decompress: false });
        // The response object is the body stream itself. teeny-request 11 (node-fetch 3) puts
        // eleven listeners on it, and Node prints a MaxListenersExceededWarning for every
        // download (googleapis/google-cloud-node#9185); the listeners go with the body.
        stream.once('response', (response: EventEmitter & { statusCode?: number }) => {
          response.setMaxListeners(32);
          if (start > 0 && response.statusCode === 200) {
            stream.destroy(new GcsStorageError('download', this.bucketName, name, new Error(`asked for bytes ${start}-${end}, got the whole object`)));
          }
        });
        return stream;
      },
      onResume: ({ offset, attempt, error }) =>
        this.log.warn('resuming a GCS download with a Range request', { bucket: this.bucketName, object: name, offset, attempt, error }),
    });
  }

  private async metadata(name: string): Promise<FileMetadata | null> {
    try {
      const [metadata] = await this.bucket.file(name).getMetadata();
      return metadata;
    } catch (error) {
      if (httpStatus(error) === 404) return null;
      throw new GcsStorageError('metadata read', this.bucketName, name, error);
    }
  }

  private async remove(name: string): Promise<boolean> {
    try {
      await this.bucket.file(name).delete();
      return true;
    } catch (error) {
      // Also the answer to a retried delete whose first attempt succeeded unseen.
      if (httpStatus(error) === 404) return false;
      throw new GcsStorageError('delete', this.bucketName, name, error);
    }
  }

  /** True when the object was deleted here (false: already gone, or the delete failed). */
  private async removeQuietly(file: File): Promise<boolean> {
    try {
      await file.delete();
      return true;
    } catch (error) {
      if (httpStatus(error) === 404) return false;
      // Left for the stale-staging sweep.
      this.log.warn('could not remove a GCS staging object', { bucket: this.bucketName, object: file.name, error });
      return false;
    }
  }

  async sweepStaging(): Promise<SweptStaging> {
    const now = this.now();
    let objects = 0;
    let bytes = 0;
    let seen = 0;
    let pageToken: string | undefined;
    do {
      let files: File[];
      try {
        const [page, next] = await this.bucket.getFiles({
          prefix: 'staging/',
          autoPaginate: false,
          maxResults: Math.min(STAGING_PAGE_SIZE, MAX_STAGING_SWEEP - seen),
          ...(pageToken !== undefined ? { pageToken } : {}),
        });
        files = page;
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } catch (error) {
        throw new GcsStorageError('list', this.bucketName, 'staging/', error);
      }
      seen += files.length;
      for (const file of files) {
        if (this.writing.has(file.name)) continue;
        // `updated` is when the object got its content; timeCreated is the same for ours.
        const written = Date.parse(String(file.metadata.updated ?? file.metadata.timeCreated ?? ''));
        if (Number.isNaN(written) || now - written <= this.stagingTtlMs) continue;
        // That generation only: an object written anew under the name since the listing stays.
        if (await this.removeQuietly(this.bucket.file(file.name, { generation: Number(file.metadata.generation) }))) {
          objects++;
          bytes += Number(file.metadata.size ?? 0);
        }
      }
    } while (pageToken !== undefined && seen < MAX_STAGING_SWEEP);
    return { objects, bytes };
  }

  async *listBlobs(): AsyncIterable<StoredObject & { digest: string }> {
    for await (const file of this.listPrefix('blobs/sha256/')) {
      const hex = file.name.slice('blobs/sha256/'.length);
      if (!/^[a-f0-9]{64}$/.test(hex)) continue;
      yield { digest: `sha256:${hex}`, ...listed(file) };
    }
  }

  async *listDocuments(prefix = ''): AsyncIterable<StoredObject & { key: string }> {
    for await (const file of this.listPrefix(`documents/${prefix}`)) {
      if (!file.name.endsWith('.json')) continue;
      yield { key: file.name.slice('documents/'.length, -'.json'.length), ...listed(file) };
    }
  }

  /** The objects under `prefix`, a page of LIST_PAGE_SIZE at a time. */
  private async *listPrefix(prefix: string): AsyncGenerator<File> {
    let pageToken: string | undefined;
    do {
      let files: File[];
      try {
        const [page, next] = await this.bucket.getFiles({ prefix, autoPaginate: false, maxResults: STAGING_PAGE_SIZE, ...(pageToken !== undefined ? { pageToken } : {}) });
        files = page;
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } catch (error) {
        throw new GcsStorageError('list', this.bucketName, prefix, error);
      }
      yield* files;
    } while (pageToken !== undefined);
  }

  // --- Leases ---------------------------------------------------------------------------------
  // A lease is the object leases/<name>.json; its version is the object's generation, and every
  // change is conditional on it (ifGenerationMatch; 0: the object must not exist), so the service
  // lets at most one of two swaps from one generation through. Release deletes the object, which
  // is safe here (unlike on the file system): a recreated object gets a new generation, and a
  // stale swap names the old one.

  async readLease(name: string): Promise<StoredLease | null> {
    const object = leaseObject(name);
    const metadata = await this.metadata(object);
    if (!metadata) return null;
    let text: string;
    try {
      text = (await collect(this.read(object, metadata))).toString('utf8');
    } catch (error) {
      // Replaced or deleted since the metadata read: the caller reads again or finds it free.
      if (httpStatus(error) === 404 || httpStatus((error as { cause?: unknown }).cause) === 404) return this.readLease(name);
      throw error;
    }
    const { record } = JSON.parse(text) as { record: LeaseRecord };
    return { version: String(metadata.generation), record };
  }

  async swapLease(name: string, expected: string | null, record: LeaseRecord | null): Promise<string | null> {
    const file = this.bucket.file(leaseObject(name));
    if (record === null) {
      if (expected === null) return null;
      try {
        await file.delete({ ifGenerationMatch: Number(expected) });
        return '0';
      } catch (error) {
        const status = httpStatus(error);
        if (status === 412) return null;
        // A retried delete whose first attempt succeeded unseen: only the generation's writer deletes it.
        if (status === 404) return '0';
        throw new GcsStorageError('lease release', this.bucketName, file.name, error);
      }
    }
    const body = Buffer.from(JSON.stringify({ record }));
    try {
      await file.save(body, {
        resumable: false,
        validation: false,
        metadata: { contentType: 'application/json', cacheControl: 'no-store' },
        preconditionOpts: { ifGenerationMatch: expected === null ? 0 : Number(expected) },
      });
      return String(file.metadata.generation);
    } catch (error) {
      if (httpStatus(error) !== 412) throw new GcsStorageError('lease write', this.bucketName, file.name, error);
      // Also the answer to a retried write whose first attempt succeeded unseen: then the lease is ours.
      const now = await this.readLease(name);
      return now && now.record?.holder === record.holder && now.record.expiresMs === record.expiresMs ? now.version : null;
    }
  }

  private unavailable(step: 'list' | 'write', error: unknown): StorageUnavailableError {
    const status = httpStatus(error);
    const where = `gs://${this.bucketName} at ${this.endpoint}`;
    const detail = (error as Error)?.message ?? String(error);
    let message: string;
    if (status === 404) {
      message = `GCS_BUCKET: the bucket ${where} does not exist (${detail})`;
    } else if (status === 401 || status === 403) {
      const who = this.options.credentialsFile
        ? `the credentials in GOOGLE_APPLICATION_CREDENTIALS (${this.options.credentialsFile})`
        : 'the application default credentials';
      const needs = step === 'list' ? 'list objects in' : 'create and delete objects in';
      message = `${who} may not ${needs} ${where} (HTTP ${status}: ${detail}); the registry needs roles/storage.objectAdmin on the bucket`;
    } else if (status !== undefined) {
      message = `Google Cloud Storage answered HTTP ${status} when opening ${where}: ${detail}`;
    } else {
      message = `cannot reach or authenticate to Google Cloud Storage for ${where}: ${detail}`;
    }
    return new StorageUnavailableError(message, { cause: error });
  }
}

/** Reads and checks a service account key: a key that cannot sign is a start-up error, not a 500 later. */
async function readKeyFile(file: string): Promise<SigningKey | undefined> {
  const fail = (why: string, cause?: unknown) =>
    new StorageUnavailableError(`GOOGLE_APPLICATION_CREDENTIALS (${file}): ${why}`, cause === undefined ? undefined : { cause });
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw fail(`cannot read the key file: ${(error as Error).message}`, error);
  }
  let key: ServiceAccountKey;
  try {
    key = JSON.parse(text) as ServiceAccountKey;
  } catch (error) {
    throw fail('is not a JSON credentials file', error);
  }
  // Other credential types (authorized_user, external_account) authenticate but hold no key.
  if (key.type !== 'service_account') return undefined;
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw fail('a service_account key needs client_email and private_key');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key.private_key);
  } catch (error) {
    throw fail(`private_key is not a usable PEM key: ${(error as Error).message}`, error);
  }
  return { clientEmail: key.client_email, privateKey };
}

/** What we hashed on the way out: the digest the blob is named by, and what GCS reports back. */
class LocalHashes {
  readonly sha256 = createHash('sha256');
  private readonly md5 = createHash('md5');
  private readonly crc = new CRC32C();
  size = 0;

  update(chunk: Buffer): void {
    this.sha256.update(chunk);
    this.md5.update(chunk);
    this.crc.update(chunk);
    this.size += chunk.length;
  }

  get md5Base64(): string {
    return this.md5.copy().digest('base64');
  }

  get crc32cBase64(): string {
    return this.crc.toString();
  }

  /** As object metadata fields: on an insert, GCS validates the data against them. */
  metadata(): { md5Hash: string; crc32c: string } {
    return { md5Hash: this.md5Base64, crc32c: this.crc32cBase64 };
  }
}

/** Compares what the service stored with what was sent; a mismatch is never kept. */
function verifyUpload(name: string, stored: FileMetadata, local: LocalHashes): void {
  if (Number(stored.size) !== local.size) throw new GcsIntegrityError(name, 'the stored size', String(local.size), String(stored.size));
  if (stored.crc32c !== local.crc32cBase64) throw new GcsIntegrityError(name, 'the CRC32C the service computed', local.crc32cBase64, String(stored.crc32c));
  // Composite objects have no MD5; ours are never composite, but CRC32C alone would do.
  if (stored.md5Hash !== undefined && stored.md5Hash !== local.md5Base64) {
    throw new GcsIntegrityError(name, 'the MD5 the service computed', local.md5Base64, stored.md5Hash);
  }
}

/** Errors from the blob's source stream pass through unchanged: they are the caller's, not the service's. */
class SourceError extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
    this.cause = cause;
  }
}

function blobObject(digest: string): string {
  return `blobs/sha256/${sha256Hex(digest)}`;
}

function documentObject(key: string): string {
  assertDocumentKey(key);
  return `documents/${key}.json`;
}

function leaseObject(name: string): string {
  assertLeaseName(name);
  return `leases/${name}.json`;
}

function listed(file: File): StoredObject {
  // `updated` is when the object got its content (ours are never rewritten in place).
  // Unknown: never old enough for garbage collection to delete it.
  const modified = Date.parse(String(file.metadata.updated ?? file.metadata.timeCreated ?? ''));
  return { size: Number(file.metadata.size ?? 0), modifiedMs: Number.isNaN(modified) ? Number.POSITIVE_INFINITY : modified };
}

function blobInfo(digest: string, metadata: FileMetadata): BlobInfo {
  return { digest, size: Number(metadata.size), contentType: metadata.contentType ?? 'application/octet-stream' };
}

function httpStatus(error: unknown): number | undefined {
  const e = error as { code?: unknown; status?: unknown; response?: { status?: unknown } } | undefined;
  for (const value of [e?.code, e?.status, e?.response?.status]) {
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
  }
  return undefined;
}

const TRANSIENT_NETWORK_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** The library's notion (408, 429, 5xx, resets), plus the ways a cut connection shows up in Node. */
function isTransient(error: unknown): boolean {
  if (RETRYABLE_ERR_FN_DEFAULT(error as Parameters<typeof RETRYABLE_ERR_FN_DEFAULT>[0])) return true;
  for (let e = error as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && TRANSIENT_NETWORK_CODES.has(e.code)) return true;
    if (e.message === 'aborted' || e.message === 'socket hang up') return true;
  }
  return false;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
