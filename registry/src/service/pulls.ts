// When on-demand images were last pulled, for garbage collection's retention (service/gc.ts,
// issue #21): one document per served manifest digest, `pulled/<hex>` = { lastPulled, name }.
//
// A pull writes nothing itself. A served manifest of an on-demand build (by tag: the image, or the
// index and each platform's image; by digest: any manifest, since the digest alone does not say
// whether it was built or pushed) is noted in memory and written later in a batch:
// - Granularity: a digest whose record this process wrote less than `granularityMs` (an hour) ago
//   is not noted again, so a hot image costs one write an hour, not one per pull. Retention is
//   counted in days: an hour of imprecision is nothing.
// - Bounded: at most `maxPending` digests wait in memory (beyond, a pull is served, not noted,
//   and counted in `dropped`); a flush writes at most `maxPerFlush` of them (the rest wait for the
//   next flush, one interval later); the digests known written are a BoundedMap of `maxKnown`.
// - Flushes run every `flushIntervalMs` (NIXERY_TAG_FLUSH_INTERVAL, jittered like the tag index)
//   while something waits, and at shutdown (close()). A failed write is logged and tried again at
//   the next flush; pulls never wait for a flush nor fail with it.
// Replicas write the same records without reading them: the last writer wins, and every writer
// writes "now", so a record is at most a flush interval older than the newest pull it saw.
// Records of pushed manifests pulled by digest are written too; garbage collection deletes the
// records that name no on-demand image once they are older than the retention.
import { DEFAULT_TAG_FLUSH_INTERVAL_SECONDS } from '../config/config.ts';
import { BoundedMap } from '../cache/ttl-cache.ts';
import { mapLimited } from '../cache/single-flight.ts';
import type { Logger } from '../log/logger.ts';
import { silentLogger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { FlushSchedule } from './flush-schedule.ts';

export const PULLED_PREFIX = 'pulled/';
/** A record is not written again within this long of the last write (per process). */
export const PULL_RECORD_GRANULARITY_MS = 3600_000;
export const DEFAULT_MAX_PENDING_PULLS = 10_000;
export const DEFAULT_MAX_PULLS_PER_FLUSH = 1_000;
const DEFAULT_MAX_KNOWN = 100_000;
const WRITE_CONCURRENCY = 8;

/** What `pulled/<hex>` holds. */
export interface PulledRecord {
  /** When the manifest was last served (ms since the epoch), to the granularity above. */
  lastPulled: number;
  /** The repository name it was pulled by (for an on-demand image, its package-list name). */
  name: string;
}

/** `pulled/<hex>` of a `sha256:<hex>` digest; undefined for another algorithm. */
export function pulledKey(digest: string): string | undefined {
  return /^sha256:[a-f0-9]{64}$/.test(digest) ? `${PULLED_PREFIX}${digest.slice('sha256:'.length)}` : undefined;
}

export interface PullRecorderOptions {
  flushIntervalMs?: number;
  granularityMs?: number;
  maxPending?: number;
  maxPerFlush?: number;
  maxKnown?: number;
  log?: Logger;
  now?: () => number;
}

export class PullRecorder {
  private readonly storage: StorageBackend;
  private readonly granularityMs: number;
  private readonly maxPending: number;
  private readonly maxPerFlush: number;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Digest → { when, name } waiting to be written, in the order noted. */
  private pending = new Map<string, PulledRecord>();
  /** Digest → the lastPulled this process last wrote. */
  private readonly known: BoundedMap<string, number>;
  private readonly schedule: FlushSchedule;
  /** Pulls served but not noted (the pending map was full), in all. */
  dropped = 0;
  private droppedLogged = 0;

  constructor(storage: StorageBackend, options: PullRecorderOptions = {}) {
    this.storage = storage;
    this.schedule = new FlushSchedule(options.flushIntervalMs ?? DEFAULT_TAG_FLUSH_INTERVAL_SECONDS * 1000, () => this.flushNow());
    this.granularityMs = options.granularityMs ?? PULL_RECORD_GRANULARITY_MS;
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING_PULLS;
    this.maxPerFlush = options.maxPerFlush ?? DEFAULT_MAX_PULLS_PER_FLUSH;
    if (!(this.maxPending >= 1) || !(this.maxPerFlush >= 1)) throw new RangeError('maxPending and maxPerFlush must be at least 1');
    this.known = new BoundedMap(options.maxKnown ?? DEFAULT_MAX_KNOWN);
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? Date.now;
  }

  /** Digests waiting to be written. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** A served manifest: noted in memory unless its record is fresh. Never touches storage, never throws. */
  recordPulled(name: string, digest: string): void {
    if (pulledKey(digest) === undefined) return;
    const now = this.now();
    const written = this.known.get(digest);
    if (written !== undefined && now - written < this.granularityMs) return;
    const waiting = this.pending.get(digest);
    if (waiting) {
      waiting.lastPulled = now;
      waiting.name = name;
      return;
    }
    if (this.pending.size >= this.maxPending) {
      this.dropped++;
      return;
    }
    this.pending.set(digest, { lastPulled: now, name });
    this.schedule.soon();
  }

  /** Writes up to maxPerFlush waiting records (one flush at a time). Never rejects. */
  flush(): Promise<void> {
    return this.schedule.flush();
  }

  /** At shutdown: no timer afterwards; writes what waits, a flush at a time while each makes progress. */
  async close(): Promise<void> {
    this.schedule.close();
    let before = Number.POSITIVE_INFINITY;
    while (this.pending.size > 0 && this.pending.size < before) {
      before = this.pending.size;
      await this.flush();
    }
  }

  private async flushNow(): Promise<void> {
    const batch: [string, PulledRecord][] = [];
    for (const entry of this.pending) {
      if (batch.length >= this.maxPerFlush) break;
      batch.push(entry);
    }
    for (const [digest] of batch) this.pending.delete(digest);
    let failed = 0;
    let lastError: unknown;
    await mapLimited(batch, WRITE_CONCURRENCY, async ([digest, record]) => {
      try {
        await this.storage.putDocument(pulledKey(digest)!, record);
        this.known.set(digest, record.lastPulled);
      } catch (error) {
        failed++;
        lastError = error;
        // Back in line unless a newer pull of it is waiting, or there is no room.
        if (!this.pending.has(digest) && this.pending.size < this.maxPending) this.pending.set(digest, record);
      }
    });
    if (failed) this.log.warn('writing pull records failed; they are tried again at the next flush', { records: failed, error: lastError });
    if (this.dropped > this.droppedLogged) {
      this.log.warn('pulls served but not recorded: too many waiting', { dropped: this.dropped - this.droppedLogged, maxPending: this.maxPending });
      this.droppedLogged = this.dropped;
    }
    if (this.pending.size) this.schedule.soon();
  }
}
