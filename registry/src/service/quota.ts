// The storage quota (NIXERY_STORAGE_QUOTA, issue #21): above it, on-demand images are evicted,
// least recently pulled first, never pushed ones; a build that could not fit even if every
// on-demand image went is refused (StorageQuotaExceededError, a 503).
//
// Bytes in use are never listed per request. Each garbage collection pass (service/gc.ts) measures
// what it keeps and reports a `QuotaMeasure`; between passes each process adds the bytes it writes
// itself (meterWrites below): replicas sharing a storage each add their own writes only, until their
// own next pass measures everything again (each process keeps its own estimate). Deletions
// outside GC (a manifest DELETE) are not subtracted: the estimate errs high until the next pass.
//
// Eviction runs inside a GC pass when its measure is over the quota: the pass deletes the
// manifest cache entries (and built indexes) of the least recently used on-demand images at once
// (no two-run rule for the entry: a later pull rebuilds it), until what stays plus what is already
// on its way out is under the quota. Their blobs then go by the ordinary sweep rules: a blob goes
// only once two runs at least the grace delay apart saw it unreferenced, and a blob written less
// than the grace delay ago is not even recorded. That keeps the promise that a client that just
// got a manifest has a grace delay to fetch its blobs — and means an eviction frees its bytes only
// a grace delay later at the earliest (the server runs a pass then), two grace delays for blobs
// written within the last grace delay: eviction can only free bytes older than the grace. Until
// then the estimate counts them as leaving, so passes meanwhile do not evict more for them. The
// quota is therefore a target the storage may exceed for one or two grace delays, by what was
// written meanwhile; the free-space reserve (NIXERY_MIN_FREE_SPACE) stays the hard limit.
//
// A build would not fit when the bytes nothing may evict (pushed images, documents of unknown
// kinds, what the last pass kept and could not evict) plus the new image's closure (sum of NAR
// sizes: compressed layers are smaller, so an upper bound) exceed the quota. It is checked when the
// closure is known, before anything is packed (builder.ts), as NIXERY_MAX_CLOSURE_SIZE is.
import { Readable } from 'node:stream';
import { formatBytes } from '../builder/errors.ts';
import type { PutBlobOptions, PutBlobResult, StorageBackend } from '../storage/backend.ts';

/** What a GC pass learnt about the storage, for the quota. */
export interface QuotaMeasure {
  /** Every blob and document stored when the pass listed them, minus what it deleted. */
  inUseBytes: number;
  /** Of those, what no eviction can free: what pushed tags, held manifests and unknown documents reach, and every document. */
  pinnedBytes: number;
  /** Of those, what is already on its way out: blobs nothing references (evicted or expired images', whatever their age), waiting for the grace rule. */
  leavingBytes: number;
}

/** An on-demand image as eviction sees it. */
export interface EvictionCandidate {
  /** What names it (garbage collection: its manifest digest, standing for its manifest cache entries or built index). */
  key: string;
  /** Last built or pulled (ms). */
  lastUsed: number;
  /** The blobs it names directly (manifests, config, layers, SBOM). */
  digests: readonly string[];
}

export interface EvictionInput {
  candidates: readonly EvictionCandidate[];
  /** Size of each stored blob. */
  blobSizes: ReadonlyMap<string, number>;
  /** Digests kept whatever is evicted (what pushed images and the like reach). */
  held: ReadonlySet<string>;
  inUseBytes: number;
  /** Already leaving without eviction. */
  leavingBytes: number;
  quotaBytes: number;
}

export interface EvictionDecision {
  /** Keys of the images to evict, least recently used first. */
  evicted: string[];
  /** Bytes of blobs only evicted images named: they leave by the sweep. */
  freedBytes: number;
}

/**
 * Which on-demand images go: least recently used first (ties by key, so the order is stable),
 * each freeing the blobs that no image still kept and nothing held names, until in use minus
 * what is leaving is at most the quota. An image that frees nothing (its blobs all shared) is
 * evicted too if older ones did not suffice: its blobs may free once its sharers go.
 */
export function chooseEvictions(input: EvictionInput): EvictionDecision {
  const { candidates, blobSizes, held, quotaBytes } = input;
  let remaining = input.inUseBytes - input.leavingBytes;
  const evicted: string[] = [];
  let freedBytes = 0;
  if (remaining <= quotaBytes) return { evicted, freedBytes };
  const users = new Map<string, number>();
  for (const c of candidates) for (const d of new Set(c.digests)) users.set(d, (users.get(d) ?? 0) + 1);
  const order = [...candidates].sort((a, b) => a.lastUsed - b.lastUsed || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const candidate of order) {
    if (remaining <= quotaBytes) break;
    evicted.push(candidate.key);
    for (const d of new Set(candidate.digests)) {
      const left = users.get(d)! - 1;
      users.set(d, left);
      if (left === 0 && !held.has(d)) {
        const size = blobSizes.get(d) ?? 0;
        freedBytes += size;
        remaining -= size;
      }
    }
  }
  return { evicted, freedBytes };
}

/** Whether a new image of `imageBytes` could never fit: what nothing may evict plus it exceeds the quota. */
export function wouldNotFit(input: { pinnedBytes: number; imageBytes: number; quotaBytes: number }): boolean {
  return input.pinnedBytes + input.imageBytes > input.quotaBytes;
}

/** A build refused because its image would not fit in the quota even after evicting every on-demand image; a 503. */
export class StorageQuotaExceededError extends Error {
  readonly code = 'STORAGE_QUOTA_EXCEEDED';
  readonly imageBytes: number;
  readonly pinnedBytes: number;
  readonly quotaBytes: number;
  readonly retryAfterSeconds: number;
  constructor(input: { imageBytes: number; pinnedBytes: number; quotaBytes: number; retryAfterSeconds: number }) {
    super(
      `the image does not fit in this registry's storage quota: its closure is ${formatBytes(input.imageBytes)}, ` +
        `and pushed images and other data that cannot be evicted already use ${formatBytes(input.pinnedBytes)} ` +
        `of the ${formatBytes(input.quotaBytes)} quota; images already built are still served`,
    );
    this.name = 'StorageQuotaExceededError';
    this.imageBytes = input.imageBytes;
    this.pinnedBytes = input.pinnedBytes;
    this.quotaBytes = input.quotaBytes;
    this.retryAfterSeconds = input.retryAfterSeconds;
  }
}

/**
 * This process's estimate of the storage in use: the last GC pass's measure plus the bytes written
 * since. `onOver` is called (at most once per `minTriggerIntervalMs`) when a write takes the
 * estimate over the quota: the server runs a GC pass then, which evicts.
 */
export class StorageUsage {
  readonly quotaBytes: number;
  private measure: QuotaMeasure | undefined;
  private writtenSince = 0;
  /** Called when a write takes the estimate over the quota (the server runs a GC pass). */
  onOver: () => void;
  private readonly minTriggerIntervalMs: number;
  private readonly now: () => number;
  private lastTrigger = Number.NEGATIVE_INFINITY;
  /** Seconds a refused client is told to wait: about when the next pass may have freed room. */
  readonly retryAfterSeconds: number;

  constructor(options: { quotaBytes: number; onOver?: () => void; minTriggerIntervalMs?: number; retryAfterSeconds?: number; now?: () => number }) {
    if (!(options.quotaBytes > 0)) throw new RangeError('the storage quota must be positive');
    this.quotaBytes = options.quotaBytes;
    this.onOver = options.onOver ?? (() => {});
    this.minTriggerIntervalMs = options.minTriggerIntervalMs ?? 60_000;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 60;
    this.now = options.now ?? Date.now;
  }

  /** False until the first pass measured the storage. */
  get isMeasured(): boolean {
    return this.measure !== undefined;
  }

  /** In use and staying (after what is leaving), plus this process's writes since the last pass. */
  get estimateBytes(): number | undefined {
    return this.measure && this.measure.inUseBytes - this.measure.leavingBytes + this.writtenSince;
  }

  /** A GC pass ended with this measure (after its evictions): writes before it are in it. */
  record(measure: QuotaMeasure): void {
    this.measure = measure;
    this.writtenSince = 0;
  }

  /** Bytes this process wrote to the storage. */
  noteWrite(bytes: number): void {
    this.writtenSince += bytes;
    const estimate = this.estimateBytes;
    if (estimate !== undefined && estimate > this.quotaBytes && this.now() - this.lastTrigger >= this.minTriggerIntervalMs) {
      this.lastTrigger = this.now();
      this.onOver();
    }
  }

  /** Throws StorageQuotaExceededError when an image of `imageBytes` could never fit; passes while nothing is measured yet. */
  checkFits(imageBytes: number): void {
    if (!this.measure) return;
    const input = { pinnedBytes: this.measure.pinnedBytes, imageBytes, quotaBytes: this.quotaBytes };
    if (wouldNotFit(input)) throw new StorageQuotaExceededError({ ...input, retryAfterSeconds: this.retryAfterSeconds });
  }
}

/** The storage, counting into `usage` the bytes of every blob and document written through it. */
export function meterWrites(storage: StorageBackend, usage: Pick<StorageUsage, 'noteWrite'>): StorageBackend {
  const putBlob = async (source: Readable | Buffer, options: PutBlobOptions): Promise<PutBlobResult> => {
    const result = await storage.putBlob(source, options);
    usage.noteWrite(result.size);
    return result;
  };
  const putDocument = async (key: string, value: unknown): Promise<void> => {
    await storage.putDocument(key, value);
    usage.noteWrite(Buffer.byteLength(JSON.stringify(value) ?? ''));
  };
  return new Proxy(storage, {
    get(target, property) {
      if (property === 'putBlob') return putBlob;
      if (property === 'putDocument') return putDocument;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
