// The storage contract every backend keeps. Blobs are content-addressed: a blob becomes visible
// under its digest only once it is complete and its digest verified. Small JSON documents (cache
// entries, tags) live beside the blobs so that caches survive restarts.
import type { Readable } from 'node:stream';
import type { UploadStore } from './upload-store.ts';

export interface BlobInfo {
  digest: string;
  size: number;
  contentType: string;
}

export interface PutBlobOptions {
  contentType: string;
  /** When given, the write fails with DigestMismatchError (and leaves nothing visible) unless the content has this digest. */
  expectedDigest?: string;
}

export interface PutBlobResult {
  digest: string;
  size: number;
  /** False when a blob with this digest was already stored (the new copy was discarded). */
  created: boolean;
}

export interface ByteRange {
  start: number;
  /** Inclusive, as in HTTP. */
  end: number;
}

/** How the HTTP layer should answer a blob GET. */
export type BlobDelivery =
  | {
      kind: 'stream';
      info: BlobInfo;
      open(range?: ByteRange): Readable;
      /** Set when the blob is a local file: the HTTP layer then sends it itself, faster than open() allows. */
      path?: string;
    }
  | { kind: 'redirect'; info: BlobInfo; url: string };

export interface StorageBackend {
  /** A human-readable description, e.g. for the index page and logs. */
  readonly description: string;
  /** Checks that the backend can work at all; throws StorageUnavailableError with the reason. */
  init(): Promise<void>;
  putBlob(source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult>;
  statBlob(digest: string): Promise<BlobInfo | null>;
  /** Throws BlobNotFoundError. */
  readBlob(digest: string): Promise<Buffer>;
  deliverBlob(digest: string): Promise<BlobDelivery | null>;
  deleteBlob(digest: string): Promise<boolean>;
  getDocument<T>(key: string): Promise<T | null>;
  /** Atomic: readers see the old or the new document, never a partial one. */
  putDocument(key: string, value: unknown): Promise<void>;
  deleteDocument(key: string): Promise<boolean>;
  /**
   * Deletes staging leftovers — partial writes of a crashed process or of another replica
   * sharing the storage — last written longer ago than the backend's staging TTL; never a staging
   * object this process is writing now, whatever its age. A bounded amount of work per call.
   */
  sweepStaging(): Promise<SweptStaging>;
  /**
   * Every blob stored under its digest, in no particular order, streamed a page (or directory
   * read) at a time: for garbage collection (service/gc.ts), never a request's path. A blob being
   * written is in staging and not listed; one that appears or goes during the listing may or may
   * not be.
   */
  listBlobs(): AsyncIterable<StoredObject & { digest: string }>;
  /** Every document whose key starts with `prefix` (default: all), streamed like listBlobs. */
  listDocuments(prefix?: string): AsyncIterable<StoredObject & { key: string }>;

  // --- Leases (storage/lease.ts builds build and GC leases across replicas on these two) ---
  /** The lease `name` as stored now: null when there is none; `record` null when it was released. */
  readLease(name: string): Promise<StoredLease | null>;
  /**
   * Compare-and-swap: replaces the lease `name` with `record` (null: releases it) only if its
   * version is still `expected` (null: there is none, as readLease answered). Of concurrent swaps
   * from one version at most one succeeds. Returns the new version, or null when the lease is no
   * longer at `expected` (nothing was written).
   */
  swapLease(name: string, expected: string | null, record: LeaseRecord | null): Promise<string | null>;

  // ---- Upload sessions (#21: any replica can continue a push) ----
  /** The state and bytes of chunked blob uploads, shared by every replica on this storage (upload-store.ts). */
  readonly uploads: UploadStore;
}

/** Who holds a lease until when (ms since the epoch, the holder's clock). */
export interface LeaseRecord {
  holder: string;
  expiresMs: number;
}

/** A lease as read: an opaque version for swapLease, and its record (null: released). */
export interface StoredLease {
  version: string;
  record: LeaseRecord | null;
}

/** Lease names are document-key-like (`build/<hex>`, `gc`). */
export function assertLeaseName(name: string): void {
  assertDocumentKey(name);
}

/** A listed object: its size and when its content was last written (ms since the epoch). */
export interface StoredObject {
  size: number;
  modifiedMs: number;
}

/** What one sweepStaging call deleted. */
export interface SweptStaging {
  objects: number;
  bytes: number;
}

export interface StagingSweepOptions {
  /**
   * Staging objects older than this are leftovers (default DEFAULT_STAGING_TTL_MS). It must
   * comfortably exceed the longest legitimate write by another process: a pushed blob is staged
   * while its request body arrives, which NIXERY_RECEIVE_TIMEOUT bounds (config.ts refuses a TTL
   * not above it); this process's own writes are skipped by name, however long they take.
   */
  stagingTtlMs?: number;
  /** The clock of the age rule, in milliseconds (tests pass a fake one). */
  now?: () => number;
}

/** An hour: six times the default NIXERY_RECEIVE_TIMEOUT, the bound of a pushed blob's write. */
export const DEFAULT_STAGING_TTL_MS = 60 * 60 * 1000;
/** Most staging objects one sweep looks at: a huge backlog is worked off over several runs. */
export const MAX_STAGING_SWEEP = 10_000;

export class StorageUnavailableError extends Error {
  readonly code = 'STORAGE_UNAVAILABLE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

export class DigestMismatchError extends Error {
  readonly code = 'DIGEST_INVALID';
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string) {
    super(`content digest ${actual} does not match the expected digest ${expected}`);
    this.name = 'DigestMismatchError';
    this.expected = expected;
    this.actual = actual;
  }
}

export class BlobNotFoundError extends Error {
  readonly code = 'BLOB_UNKNOWN';
  readonly digest: string;
  constructor(digest: string) {
    super(`blob ${digest} is not stored`);
    this.name = 'BlobNotFoundError';
    this.digest = digest;
  }
}

const SHA256 = /^sha256:([a-f0-9]{64})$/;

/** Only sha256 digests are stored; everything else is rejected before it reaches a path. */
export function sha256Hex(digest: string): string | null {
  return SHA256.exec(digest)?.[1] ?? null;
}

/** Document keys are slash-separated segments of safe characters, never a path escape. */
export function assertDocumentKey(key: string): void {
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(`invalid storage document key ${JSON.stringify(key)}`);
  }
}
