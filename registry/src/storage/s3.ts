// Amazon S3 and S3-compatible services (Ceph RGW, MinIO, …) as the storage backend, with the
// settings of Nixery's and distribution's S3 drivers: bucket, region, endpoint, path-style
// addressing, a key prefix, server-side encryption, and blobs redirected to presigned URLs or
// streamed through the registry. Credentials come from the SDK's default chain (s3-client.ts).
//
// Layout under the prefix: blobs/sha256/<hex> (content type on the object), documents/<key>.json,
// staging/<uuid> for uploads in flight. A blob is uploaded to a staging key while it is hashed
// (one PutObject, or a multipart upload in parts of partSize bytes with at most queueSize parts
// in flight, so memory stays bounded whatever the layer's size), checked against the size and
// ETag the server reports (s3-etag.ts), and only then copied server-side under its digest (above
// CopyObject's 5 GiB, range by range into a multipart upload that completes all at once). The
// copy carries `If-None-Match: *`, which AWS S3 honours; Ceph RGW 16 ignores it on a copy (it
// honours it, and If-Match, on PutObject), so a HEAD of the digest comes first: an existing blob
// is reported as not created and left alone, and two writers racing past the HEAD both write
// the same verified bytes under the same content address, which changes nothing a reader sees.
// A partial or unverified blob is never under a digest: a multipart upload's object exists only
// once it completes, and a writer that dies leaves a staging object or an unfinished multipart
// upload, which sweepStaging removes (aborts) once older than the staging TTL.
//
// Retries: the SDK's standard strategy retries throttling (503 SlowDown), 5xx and cut connections
// for every request, each with a Buffer body it can resend; every write is safe to repeat (fresh
// staging keys, copies of verified bytes, whole-document replacement). Reads through the registry
// resume with a Range request after a failure mid-body (gcs-download.ts's reader).
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
  type HeadObjectCommandOutput,
  type S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createLogger, type Logger } from '../log/logger.ts';
import {
  assertDocumentKey,
  assertLeaseName,
  BlobNotFoundError,
  DigestMismatchError,
  sha256Hex,
  StorageUnavailableError,
  type BlobDelivery,
  type BlobInfo,
  type ByteRange,
  type LeaseRecord,
  type PutBlobOptions,
  type PutBlobResult,
  type StagingSweepOptions,
  type StorageBackend,
  type StoredLease,
  type StoredObject,
  type SweptStaging,
  DEFAULT_STAGING_TTL_MS,
  MAX_STAGING_SWEEP,
} from './backend.ts';
import { GcsShortReadError, GcsStallError, resumingRead } from './gcs-download.ts';
import { isTransientS3Error, makeS3Client, s3Code, s3Status } from './s3-client.ts';
import { unquoteEtag, UploadEtag } from './s3-etag.ts';
import { S3UploadStore } from './s3-uploads.ts';
import type { UploadStore } from './upload-store.ts';

export type S3RedirectMode = 'presigned' | 'stream';
export type S3ServerSideEncryption = 'AES256' | 'aws:kms';

/** As the GCS backend's signed URLs: long enough to start a download, short if leaked. */
export const DEFAULT_PRESIGNED_URL_EXPIRY_SECONDS = 300;
/** S3 allows parts of 5 MiB to 5 GiB (the last one smaller). */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
export const MAX_PART_SIZE_BYTES = 5 * 1024 * 1024 * 1024;
export const DEFAULT_PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once by one blob upload: memory is about (queueSize + 1) × partSize. */
export const DEFAULT_QUEUE_SIZE = 2;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** CopyObject copies at most 5 GiB; larger blobs are copied part by part (UploadPartCopy). */
export const MAX_COPY_OBJECT_BYTES = 5 * 1024 * 1024 * 1024;
export const DEFAULT_COPY_PART_SIZE_BYTES = 1024 * 1024 * 1024;
/** Keys per listing page (the API's maximum). */
const PAGE_SIZE = 1000;

export interface S3StorageOptions extends StagingSweepOptions {
  bucket: string;
  /** Keys start with `<prefix>/`; slashes around it are ignored. */
  prefix?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Default presigned. */
  redirect?: S3RedirectMode;
  presignedUrlExpirySeconds?: number;
  serverSideEncryption?: S3ServerSideEncryption;
  /** With aws:kms: the key; unset, the bucket's or account's default key. */
  kmsKeyId?: string;
  partSizeBytes?: number;
  queueSize?: number;
  /** Blobs above this are published with a multipart copy (tests lower it; S3's CopyObject limit otherwise). */
  maxCopyObjectBytes?: number;
  copyPartSizeBytes?: number;
  /** Attempts of one request, the first included. */
  maxAttempts?: number;
  stallTimeoutMs?: number;
  /** Reads through the registry: first back-off before a Range resume, and attempts without progress. */
  resumeDelayMs?: number;
  maxResumes?: number;
  log?: Logger;
}

/** A failed call to the service, with what was being done to which key. */
export class S3StorageError extends Error {
  readonly code = 'S3_ERROR';
  readonly operation: string;
  readonly bucket: string;
  readonly key: string | undefined;
  /** The HTTP status and S3 error code the service answered, when it answered. */
  readonly status: number | undefined;
  readonly s3Code: string | undefined;
  constructor(operation: string, bucket: string, key: string | undefined, cause: unknown) {
    const status = s3Status(cause);
    const code = s3Code(cause);
    super(
      `S3 ${operation} of s3://${bucket}${key !== undefined ? `/${key}` : ''} failed` +
        `${status !== undefined ? ` (HTTP ${status}${code ? ` ${code}` : ''})` : ''}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
    this.name = 'S3StorageError';
    this.operation = operation;
    this.bucket = bucket;
    this.key = key;
    this.status = status;
    this.s3Code = code;
  }
}

/** What the server stored is not what was sent; such an object is never kept. */
export class S3IntegrityError extends Error {
  readonly code = 'S3_INTEGRITY';
  readonly key: string;
  constructor(key: string, what: string, expected: string, actual: string) {
    super(`S3 object ${key}: ${what} is ${actual}, expected ${expected}`);
    this.name = 'S3IntegrityError';
    this.key = key;
  }
}

export class S3Storage implements StorageBackend {
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly keyPrefix: string;
  readonly client: S3Client;
  private readonly options: S3StorageOptions;
  private readonly log: Logger;
  private readonly mode: S3RedirectMode;
  private readonly expirySeconds: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly stagingTtlMs: number;
  private readonly now: () => number;
  /** Staging keys this process is writing now: never swept. */
  private readonly writing = new Set<string>();
  readonly uploads: UploadStore;

  constructor(options: S3StorageOptions) {
    this.options = options;
    this.bucket = options.bucket;
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.keyPrefix = prefix === '' ? '' : `${prefix}/`;
    this.log = options.log ?? createLogger({ base: { component: 'storage' } });
    this.mode = options.redirect ?? 'presigned';
    this.expirySeconds = options.presignedUrlExpirySeconds ?? DEFAULT_PRESIGNED_URL_EXPIRY_SECONDS;
    this.partSize = options.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
    if (this.partSize < MIN_PART_SIZE_BYTES || this.partSize > MAX_PART_SIZE_BYTES) {
      throw new RangeError(`S3 multipart parts must be ${MIN_PART_SIZE_BYTES} to ${MAX_PART_SIZE_BYTES} bytes, not ${this.partSize}`);
    }
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.stagingTtlMs = options.stagingTtlMs ?? DEFAULT_STAGING_TTL_MS;
    this.now = options.now ?? Date.now;
    this.client = makeS3Client({
      ...(options.region !== undefined ? { region: options.region } : {}),
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      ...(options.forcePathStyle !== undefined ? { forcePathStyle: options.forcePathStyle } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
    });
    this.uploads = new S3UploadStore({
      putObjectOnce: (key, source) => this.putObjectOnce(this.key(key), source),
      putJson: (key, value, condition) => this.putJson(this.key(key), value, condition),
      getJson: (key) => this.getJson(this.key(key)),
      read: (key, size, etag) => this.read(this.key(key), { ContentLength: size, ETag: etag, $metadata: {} }),
      list: (prefix) => this.listRelative(prefix),
      remove: (key) => this.delete(this.key(key)),
      status: s3Status,
    });
  }

  get description(): string {
    const delivery = { presigned: 'presigned URL redirects', stream: 'streamed through the registry' }[this.mode];
    return `s3 (s3://${this.bucket}/${this.keyPrefix} at ${this.options.endpoint ?? 'AWS'}, blobs ${delivery})`;
  }

  get redirectMode(): S3RedirectMode {
    return this.mode;
  }

  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      throw this.unavailable('open', error);
    }
    // Reading is not enough to serve: a registry that cannot write fails its first build.
    const probe = this.key(`staging/probe-${randomUUID()}`);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.alloc(0), ContentType: 'text/plain', ...this.encryption() }));
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }));
    } catch (error) {
      throw this.unavailable('write', error);
    }
    const swept = await this.sweepStaging();
    if (swept.objects > 0) this.log.info('removed stale S3 staging objects', { bucket: this.bucket, removed: swept.objects, bytes: swept.bytes });
    this.log.info('s3 storage ready', {
      bucket: this.bucket,
      prefix: this.keyPrefix,
      endpoint: this.options.endpoint ?? 'AWS',
      blobs: this.mode,
      presignedUrlExpirySeconds: this.expirySeconds,
      partSizeBytes: this.partSize,
    });
  }

  async putBlob(source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult> {
    const staging = this.key(`staging/${randomUUID()}`);
    this.writing.add(staging);
    try {
      return await this.putStaged(staging, source, options);
    } finally {
      this.writing.delete(staging);
    }
  }

  private async putStaged(staging: string, source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult> {
    try {
      const staged = await this.stage(staging, source, options.contentType);
      const digest = `sha256:${staged.sha256}`;
      if (options.expectedDigest !== undefined && options.expectedDigest !== digest) {
        throw new DigestMismatchError(options.expectedDigest, digest);
      }
      const target = this.blobKey(digest);
      this.writing.add(target);
      try {
        const created = await this.publish(staging, target, staged.size, options.contentType);
        return { digest, size: staged.size, created };
      } finally {
        this.writing.delete(target);
      }
    } finally {
      await this.removeQuietly(staging);
    }
  }

  /**
   * Uploads `source` to the staging key while hashing it, and checks what the server stored
   * against what was sent. A failure of the source itself is rethrown as it was (a client that
   * went away is not the service's fault).
   */
  private async stage(staging: string, source: Readable | Buffer | AsyncIterable<Buffer>, contentType: string): Promise<{ sha256: string; size: number }> {
    const sha256 = createHash('sha256');
    const etag = new UploadEtag(this.partSize);
    const hashed = (chunk: Buffer) => {
      sha256.update(chunk);
      etag.update(chunk);
      return chunk;
    };
    let sourceError: { error: unknown } | undefined;
    let body: Buffer | Readable;
    if (Buffer.isBuffer(source)) {
      body = hashed(source);
    } else {
      const chunks = async function* (): AsyncGenerator<Buffer> {
        try {
          for await (const chunk of source) yield hashed(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
        } catch (error) {
          sourceError = { error };
          throw error;
        }
      };
      body = Readable.from(chunks(), { objectMode: false });
    }
    try {
      await new Upload({
        client: this.client,
        queueSize: this.queueSize,
        partSize: this.partSize,
        leavePartsOnError: false,
        params: { Bucket: this.bucket, Key: staging, Body: body, ContentType: contentType, ...this.encryption() },
      }).done();
    } catch (error) {
      if (sourceError) throw sourceError.error;
      throw new S3StorageError('upload', this.bucket, staging, error);
    } finally {
      if (source instanceof Readable && !source.destroyed && !source.readableEnded) source.destroy();
    }
    await this.verifyStaged(staging, etag);
    return { sha256: sha256.digest('hex'), size: etag.size };
  }

  /** Compares what the server stored with what was sent. */
  private async verifyStaged(staging: string, sent: UploadEtag): Promise<void> {
    const stored = await this.head(staging);
    if (!stored) throw new S3IntegrityError(staging, 'the staging object', 'present after its upload', 'missing');
    if (stored.ContentLength !== sent.size) throw new S3IntegrityError(staging, 'the stored size', String(sent.size), String(stored.ContentLength));
    // With SSE-KMS the ETag is not an MD5 of the content; the size and the server's own
    // per-request checks are what remain.
    if (this.options.serverSideEncryption !== 'aws:kms') {
      const etag = unquoteEtag(stored.ETag);
      if (etag !== sent.value()) throw new S3IntegrityError(staging, 'the ETag the server computed', sent.value(), String(etag));
    }
  }

  /** Copies a verified staging object under its digest; false when the digest was already there. */
  private async publish(staging: string, target: string, size: number, contentType: string): Promise<boolean> {
    if (await this.head(target)) return false;
    if (size > (this.options.maxCopyObjectBytes ?? MAX_COPY_OBJECT_BYTES)) return this.publishInParts(staging, target, size, contentType);
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: target,
          CopySource: this.copySource(staging),
          IfNoneMatch: '*',
          MetadataDirective: 'COPY',
          ...this.encryption(),
        }),
      );
      return true;
    } catch (error) {
      if (s3Status(error) === 412) return false;
      throw new S3StorageError('copy', this.bucket, target, error);
    }
  }

  /**
   * A server-side copy in ranges: the object under the digest exists only once the upload
   * completes. A writer that dies mid-way leaves an unfinished upload under blobs/, which
   * sweepStaging aborts like a staging one.
   */
  private async publishInParts(
    staging: string,
    target: string,
    size: number,
    contentType: string,
    condition: { IfNoneMatch: '*' } | { IfMatch: string } = { IfNoneMatch: '*' },
  ): Promise<boolean> {
    const source = this.copySource(staging);
    const partSize = this.options.copyPartSizeBytes ?? DEFAULT_COPY_PART_SIZE_BYTES;
    let uploadId: string | undefined;
    try {
      uploadId = (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target, ContentType: contentType, ...this.encryption() }))).UploadId;
      const parts: { PartNumber: number; ETag: string | undefined }[] = [];
      for (let start = 0, part = 1; start < size; start += partSize, part++) {
        const end = Math.min(size, start + partSize) - 1;
        const copied = await this.client.send(
          new UploadPartCopyCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, PartNumber: part, CopySource: source, CopySourceRange: `bytes=${start}-${end}` }),
        );
        parts.push({ PartNumber: part, ETag: copied.CopyPartResult?.ETag });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: parts }, ...condition }));
      return true;
    } catch (error) {
      if (uploadId !== undefined) {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId })).catch((abortError: unknown) =>
          this.log.warn('could not abort an S3 multipart copy', { bucket: this.bucket, key: target, error: abortError }),
        );
      }
      if (s3Status(error) === 412) return false;
      throw new S3StorageError('multipart copy', this.bucket, target, error);
    }
  }

  private copySource(key: string): string {
    return `${this.bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`;
  }

  // ---- Upload sessions (s3-uploads.ts) ----

  /**
   * Creates the object `key` from `source` unless that key exists, for upload chunks: `taken`
   * when another writer's object has the key. A body up to the part size is buffered (bounded)
   * and written with one PutObject If-None-Match: *. A larger one is staged and verified as a
   * blob is, then the key is claimed by an empty PutObject If-None-Match: * and the staged
   * bytes copied over the claim (If-Match on it, which AWS S3 honours; radosgw 16 ignores
   * conditions on a copy, but no other writer can touch a claimed key). A copy that fails
   * removes the claim, leaving the offset free; a writer that dies between claim and copy
   * leaves an empty claim, which blocks that offset until the idle session is purged. An empty
   * source creates nothing (an empty chunk would take a name that the next chunk needs).
   */
  private async putObjectOnce(key: string, source: Readable): Promise<{ size: number; taken: boolean }> {
    const iterator = (source as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let buffered = 0;
    let ended = false;
    while (buffered <= this.partSize) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      head.push(chunk);
      buffered += chunk.length;
    }
    if (ended) {
      const body = Buffer.concat(head);
      return body.length === 0 ? { size: 0, taken: false } : this.putSmallOnce(key, body);
    }
    const rest = async function* (): AsyncGenerator<Buffer> {
      yield* head;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        yield typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
    };
    const staging = this.key(`staging/${randomUUID()}`);
    this.writing.add(staging);
    try {
      let size: number;
      try {
        ({ size } = await this.stage(staging, rest(), 'application/octet-stream'));
      } finally {
        if (!source.destroyed && !source.readableEnded) source.destroy();
      }
      const nonce = randomUUID();
      const claim = await this.claim(key, nonce);
      if (claim === null) return { size, taken: true };
      try {
        if (size > (this.options.maxCopyObjectBytes ?? MAX_COPY_OBJECT_BYTES)) {
          this.writing.add(key);
          try {
            if (!(await this.publishInParts(staging, key, size, 'application/octet-stream', { IfMatch: claim }))) {
              throw new S3IntegrityError(key, 'the claim of the chunk', 'unchanged until the copy completes', 'replaced');
            }
          } finally {
            this.writing.delete(key);
          }
        } else {
          await this.client.send(
            new CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: this.copySource(staging), IfMatch: claim, MetadataDirective: 'COPY', ...this.encryption() }),
          );
        }
      } catch (error) {
        await this.removeQuietly(key);
        throw error instanceof S3StorageError ? error : new S3StorageError('copy', this.bucket, key, error);
      }
      return { size, taken: false };
    } finally {
      await this.removeQuietly(staging);
      this.writing.delete(staging);
    }
  }

  private async putSmallOnce(key: string, body: Buffer): Promise<{ size: number; taken: boolean }> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/octet-stream',
          ContentMD5: createHash('md5').update(body).digest('base64'),
          IfNoneMatch: '*',
          ...this.encryption(),
        }),
      );
      return { size: body.length, taken: false };
    } catch (error) {
      if (!isConditionFailed(error)) throw new S3StorageError('upload', this.bucket, key, error);
    }
    // A retried write whose first attempt succeeded unseen finds its own bytes there; the same
    // bytes from another writer are as good (the chain holds what the client sent).
    const existing = await this.head(key);
    if (!existing || existing.ContentLength !== body.length) return { size: body.length, taken: true };
    const stored = await collect(this.read(key, existing));
    return { size: body.length, taken: !stored.equals(body) };
  }

  /** Takes `key` with an empty object carrying `nonce`; its ETag, or null when another writer has the key. */
  private async claim(key: string, nonce: string): Promise<string | null> {
    try {
      const written = await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: Buffer.alloc(0), Metadata: { claim: nonce }, IfNoneMatch: '*', ...this.encryption() }),
      );
      const etag = unquoteEtag(written.ETag);
      if (etag === undefined) throw new S3IntegrityError(key, 'the ETag of a claim', 'present', 'missing');
      return etag;
    } catch (error) {
      if (error instanceof S3IntegrityError) throw error;
      if (!isConditionFailed(error)) throw new S3StorageError('claim', this.bucket, key, error);
    }
    // Our own retried claim whose first attempt succeeded unseen carries our nonce.
    const existing = await this.head(key);
    return existing?.Metadata?.claim === nonce ? (unquoteEtag(existing.ETag) ?? null) : null;
  }

  /**
   * A small JSON object in one PutObject, with Content-MD5 so that the server refuses bytes
   * damaged on the way; with a condition, written only if it holds (false when the service refused it).
   */
  private async putJson(key: string, value: unknown, condition?: { ifNoneMatch: '*' } | { ifMatch: string }): Promise<boolean> {
    const body = Buffer.from(JSON.stringify(value));
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          CacheControl: 'no-store',
          ContentMD5: createHash('md5').update(body).digest('base64'),
          ...(condition === undefined ? {} : 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : { IfNoneMatch: '*' }),
          ...this.encryption(),
        }),
      );
      return true;
    } catch (error) {
      if (condition !== undefined && isConditionFailed(error)) return false;
      throw new S3StorageError('write', this.bucket, key, error);
    }
  }

  /** A small JSON object with the ETag of that very body (one GET), or null when there is none. */
  private async getJson<T>(key: string): Promise<{ value: T; etag: string } | null> {
    let text: string;
    let etag: string | undefined;
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      etag = unquoteEtag(response.ETag);
      text = await response.Body!.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw new S3StorageError('read', this.bucket, key, error);
    }
    if (etag === undefined) throw new S3IntegrityError(key, 'the ETag of a read', 'present', 'missing');
    try {
      return { value: JSON.parse(text) as T, etag };
    } catch (cause) {
      throw new S3StorageError('parse', this.bucket, key, cause);
    }
  }

  /** Deletes `key`, present or not (S3 answers 204 either way). */
  private async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      if (!isNotFound(error)) throw new S3StorageError('delete', this.bucket, key, error);
    }
  }

  async statBlob(digest: string): Promise<BlobInfo | null> {
    if (sha256Hex(digest) === null) return null;
    const head = await this.head(this.blobKey(digest));
    return head ? blobInfo(digest, head) : null;
  }

  async readBlob(digest: string): Promise<Buffer> {
    const hex = sha256Hex(digest);
    if (hex === null) throw new BlobNotFoundError(digest);
    const key = this.blobKey(digest);
    const head = await this.head(key);
    if (!head) throw new BlobNotFoundError(digest);
    return collect(this.read(key, head, undefined, hex));
  }

  async deliverBlob(digest: string): Promise<BlobDelivery | null> {
    const hex = sha256Hex(digest);
    if (hex === null) return null;
    const key = this.blobKey(digest);
    const head = await this.head(key);
    if (!head) return null;
    const info = blobInfo(digest, head);
    switch (this.mode) {
      case 'presigned':
        return { kind: 'redirect', info, url: await this.presignedUrl(key) };
      case 'stream':
        // A whole blob is checked against its digest before its last bytes are passed on.
        return { kind: 'stream', info, open: (range?: ByteRange) => this.read(key, head, range, range ? undefined : hex) };
    }
  }

  /** A SigV4 query-signed GET of the key, valid for the configured expiry. */
  presignedUrl(key: string): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: this.expirySeconds });
  }

  async deleteBlob(digest: string): Promise<boolean> {
    if (sha256Hex(digest) === null) return false;
    return this.remove(this.blobKey(digest));
  }

  async getDocument<T>(key: string): Promise<T | null> {
    const name = this.documentKey(key);
    let text: string;
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: name }));
      text = await response.Body!.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw new S3StorageError('read', this.bucket, name, error);
    }
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new S3StorageError('parse', this.bucket, name, cause);
    }
  }

  async putDocument(key: string, value: unknown): Promise<void> {
    // One PutObject replaces the object atomically: readers see the old document or the new one.
    await this.putJson(this.documentKey(key), value);
  }

  async deleteDocument(key: string): Promise<boolean> {
    return this.remove(this.documentKey(key));
  }

  async sweepStaging(): Promise<SweptStaging> {
    const now = this.now();
    const stale = (written: Date | undefined) => written !== undefined && now - written.getTime() > this.stagingTtlMs;
    let objects = 0;
    let bytes = 0;
    let seen = 0;
    const prefix = this.key('staging/');
    for await (const object of this.listPrefix(prefix, () => MAX_STAGING_SWEEP - seen)) {
      seen++;
      if (object.Key === undefined || this.writing.has(object.Key) || !stale(object.LastModified)) continue;
      if (await this.removeQuietly(object.Key)) {
        objects++;
        bytes += object.Size ?? 0;
      }
      if (seen >= MAX_STAGING_SWEEP) break;
    }
    // A writer that died mid-way through a multipart upload (or copy) leaves no object, only its
    // parts (a large upload chunk's copy too). Only our own prefixes: a bucket may hold other
    // applications' uploads.
    for await (const upload of this.unfinishedUploads([prefix, this.key('blobs/sha256/'), this.key('uploads/')], () => MAX_STAGING_SWEEP - seen)) {
      seen++;
      if (upload.Key === undefined || upload.UploadId === undefined || this.writing.has(upload.Key) || !stale(upload.Initiated)) continue;
      const partBytes = await this.uploadedBytes(upload.Key, upload.UploadId);
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        objects++;
        bytes += partBytes;
      } catch (error) {
        if (!isNotFound(error)) this.log.warn('could not abort a stale S3 multipart upload', { bucket: this.bucket, key: upload.Key, error });
      }
      if (seen >= MAX_STAGING_SWEEP) break;
    }
    return { objects, bytes };
  }

  async *listBlobs(): AsyncIterable<StoredObject & { digest: string }> {
    const prefix = this.key('blobs/sha256/');
    for await (const object of this.listPrefix(prefix)) {
      const hex = object.Key!.slice(prefix.length);
      if (!/^[a-f0-9]{64}$/.test(hex)) continue;
      yield { digest: `sha256:${hex}`, ...listed(object) };
    }
  }

  async *listDocuments(prefix = ''): AsyncIterable<StoredObject & { key: string }> {
    const root = this.key('documents/');
    for await (const object of this.listPrefix(`${root}${prefix}`)) {
      if (!object.Key!.endsWith('.json')) continue;
      yield { key: object.Key!.slice(root.length, -'.json'.length), ...listed(object) };
    }
  }

  /** listPrefix with keys relative to the backend's prefix. */
  private async *listRelative(prefix: string): AsyncGenerator<_Object & { Key: string }> {
    for await (const object of this.listPrefix(this.key(prefix))) yield { ...object, Key: object.Key!.slice(this.keyPrefix.length) };
  }

  /** The objects under `prefix`, a page at a time; `budget` bounds the page size when given. */
  private async *listPrefix(prefix: string, budget?: () => number): AsyncGenerator<_Object> {
    let token: string | undefined;
    do {
      const max = Math.min(PAGE_SIZE, budget?.() ?? PAGE_SIZE);
      if (max <= 0) return;
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: max, ...(token !== undefined ? { ContinuationToken: token } : {}) }));
      } catch (error) {
        throw new S3StorageError('list', this.bucket, prefix, error);
      }
      for (const object of page.Contents ?? []) if (object.Key !== undefined) yield object;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async *unfinishedUploads(prefixes: string[], budget: () => number) {
    for (const prefix of prefixes) yield* this.unfinishedUploadsUnder(prefix, budget);
  }

  private async *unfinishedUploadsUnder(prefix: string, budget: () => number) {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const max = Math.min(PAGE_SIZE, budget());
      if (max <= 0) return;
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            MaxUploads: max,
            ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker !== undefined ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        );
      } catch (error) {
        throw new S3StorageError('list multipart uploads', this.bucket, prefix, error);
      }
      yield* page.Uploads ?? [];
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
  }

  /** What an unfinished upload's first page of parts holds, for the sweep's report (0 when unknown). */
  private async uploadedBytes(key: string, uploadId: string): Promise<number> {
    try {
      const parts = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      return (parts.Parts ?? []).reduce((sum, part) => sum + (part.Size ?? 0), 0);
    } catch {
      return 0;
    }
  }

  private read(key: string, head: HeadObjectCommandOutput, range?: ByteRange, expectedSha256?: string): Readable {
    const size = head.ContentLength ?? 0;
    const resumeDelayMs = this.options.resumeDelayMs ?? 250;
    return resumingRead({
      object: key,
      start: range?.start ?? 0,
      end: range?.end ?? size - 1,
      stallTimeoutMs: this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      maxResumes: this.options.maxResumes ?? 5,
      retryDelayMs: (attempt) => Math.min(resumeDelayMs * 2 ** (attempt - 1), 8_000),
      isRetryable: (error) => error instanceof GcsStallError || error instanceof GcsShortReadError || isTransientS3Error(error),
      ...(expectedSha256 !== undefined ? { expectedSha256 } : {}),
      open: (start, end) => this.openRange(key, start, end, head.ETag),
      onResume: ({ offset, attempt, error }) => this.log.warn('resuming an S3 download with a Range request', { bucket: this.bucket, key, offset, attempt, error }),
    });
  }

  /** One GET of bytes start..end; destroying the stream aborts the request. */
  private openRange(key: string, start: number, end: number, etag: string | undefined): Readable {
    const out = new PassThrough();
    const abort = new AbortController();
    out.once('close', () => abort.abort());
    void (async () => {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${start}-${end}`, ...(etag !== undefined ? { IfMatch: etag } : {}) }),
        { abortSignal: abort.signal },
      );
      if (start > 0 && response.ContentRange === undefined) {
        throw new S3StorageError('download', this.bucket, key, new Error(`asked for bytes ${start}-${end}, got the whole object`));
      }
      await pipeline(response.Body as Readable, out);
    })().catch((error: unknown) => out.destroy(error as Error));
    return out;
  }

  private async head(key: string): Promise<HeadObjectCommandOutput | null> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) return null;
      throw new S3StorageError('metadata read', this.bucket, key, error);
    }
  }

  /** S3 deletes answer 204 whether or not the key existed: a HEAD tells which. */
  private async remove(key: string): Promise<boolean> {
    if (!(await this.head(key))) return false;
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      throw new S3StorageError('delete', this.bucket, key, error);
    }
  }

  /** True when the delete went through; a failure is logged and left for the stale-staging sweep. */
  private async removeQuietly(key: string): Promise<boolean> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      this.log.warn('could not remove an S3 staging object', { bucket: this.bucket, key, error });
      return false;
    }
  }

  private encryption(): { ServerSideEncryption?: S3ServerSideEncryption; SSEKMSKeyId?: string } {
    const sse = this.options.serverSideEncryption;
    if (sse === undefined) return {};
    return { ServerSideEncryption: sse, ...(sse === 'aws:kms' && this.options.kmsKeyId !== undefined ? { SSEKMSKeyId: this.options.kmsKeyId } : {}) };
  }

  private key(relative: string): string {
    return `${this.keyPrefix}${relative}`;
  }

  private blobKey(digest: string): string {
    return this.key(`blobs/sha256/${sha256Hex(digest)}`);
  }

  private documentKey(key: string): string {
    assertDocumentKey(key);
    return this.key(`documents/${key}.json`);
  }

  // --- Leases ---------------------------------------------------------------------------------
  // A lease is the object leases/<name>.json; its version is the object's ETag (unquoted: radosgw
  // 16 compares If-Match with the bare value and refuses the quoted form), and every change
  // is a PutObject conditional on it (If-Match; If-None-Match: * to create), which radosgw and
  // AWS S3 let through for at most one of two writers from one ETag (412, or 409 on a conflicting
  // concurrent write, for the others). Every body carries a fresh nonce, so an ETag never comes
  // back (no ABA) even for the same record. Release writes a released record rather than deleting
  // the object: a conditional DeleteObject is not generally supported.

  async readLease(name: string): Promise<StoredLease | null> {
    const read = await this.readLeaseBody(this.leaseKey(name));
    return read && { version: read.version, record: read.body.record };
  }

  async swapLease(name: string, expected: string | null, record: LeaseRecord | null): Promise<string | null> {
    const key = this.leaseKey(name);
    if (record === null && expected === null) return null;
    const nonce = randomUUID();
    const body = Buffer.from(JSON.stringify({ record, nonce } satisfies LeaseBody));
    try {
      const written = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          CacheControl: 'no-store',
          ContentMD5: createHash('md5').update(body).digest('base64'),
          ...(expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }),
          ...this.encryption(),
        }),
      );
      const version = unquoteEtag(written.ETag);
      if (version === undefined) throw new S3IntegrityError(key, 'the ETag of a lease write', 'present', 'missing');
      return version;
    } catch (error) {
      if (error instanceof S3IntegrityError) throw error;
      if (!isConditionFailed(error)) throw new S3StorageError(record === null ? 'lease release' : 'lease write', this.bucket, key, error);
      // Also the answer to a retried write whose first attempt succeeded unseen: the nonce tells.
      const now = await this.readLeaseBody(key);
      return now?.body.nonce === nonce ? now.version : null;
    }
  }

  /** The lease object's body and the ETag of that very body (one GET: no HEAD-then-read race). */
  private async readLeaseBody(key: string): Promise<{ version: string; body: LeaseBody } | null> {
    const read = await this.getJson<Partial<LeaseBody>>(key);
    return read && { version: read.etag, body: { record: read.value.record ?? null, nonce: String(read.value.nonce ?? '') } };
  }

  private leaseKey(name: string): string {
    assertLeaseName(name);
    return this.key(`leases/${name}.json`);
  }

  private unavailable(step: 'open' | 'write', error: unknown): StorageUnavailableError {
    const status = s3Status(error);
    const where = `s3://${this.bucket} at ${this.options.endpoint ?? 'AWS'}`;
    const detail = `${s3Code(error) ?? (error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`;
    let message: string;
    if (status === 404) {
      message = `S3_BUCKET: the bucket ${where} does not exist (${detail})`;
    } else if (status === 401 || status === 403) {
      const needs = step === 'open' ? 'access' : 'put and delete objects in';
      message = `the AWS credentials (from the SDK's default chain: AWS_* variables, shared files, web identity) may not ${needs} ${where} (HTTP ${status} ${detail})`;
    } else if (status === 301 || status === 400) {
      message = `S3 answered HTTP ${status} when opening ${where}: check AWS_REGION, S3_ENDPOINT and S3_FORCE_PATH_STYLE (${detail})`;
    } else if (status !== undefined) {
      message = `S3 answered HTTP ${status} when opening ${where}: ${detail}`;
    } else {
      message = `cannot reach or authenticate to S3 for ${where}: ${detail}`;
    }
    return new StorageUnavailableError(message, { cause: error });
  }
}

function isNotFound(error: unknown): boolean {
  return s3Status(error) === 404;
}

/** A conditional write refused: 412 PreconditionFailed, or 409 ConditionalRequestConflict (a concurrent write won). */
export function isConditionFailed(error: unknown): boolean {
  const status = s3Status(error);
  return status === 412 || status === 409;
}

/** A lease object's content: the record (null: released) and the nonce that makes its ETag unique. */
interface LeaseBody {
  record: LeaseRecord | null;
  nonce: string;
}

function listed(object: _Object): StoredObject {
  // Unknown: never old enough for garbage collection to delete it.
  return { size: object.Size ?? 0, modifiedMs: object.LastModified?.getTime() ?? Number.POSITIVE_INFINITY };
}

function blobInfo(digest: string, head: HeadObjectCommandOutput): BlobInfo {
  return { digest, size: head.ContentLength ?? 0, contentType: head.ContentType ?? 'application/octet-stream' };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
