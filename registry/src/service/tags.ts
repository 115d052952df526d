// The tags service: which tags have been served (built or pushed) for a repository, for the
// distribution API's tag listing. Every package list is a potential image, so this lists what
// exists, not what could.
//
// A pull writes nothing. A pulled tag is noted in memory and written later with the others: every
// flush interval (and at shutdown) each of SHARDS documents `pulled-tags/<k>` that has something
// new is read, merged and written once; a repository's hash picks its shard. The records are
// bounded: at most `maxRecorded` pulled tags in storage (each shard holds its share,
// ceil(maxRecorded / SHARDS)), and at most as many waiting in memory. Beyond that a pulled tag is
// served but not recorded, and counted (nixery_tag_index_dropped_total). So a flood of made-up
// tags costs at most SHARDS document writes per interval, and storage and memory stay bounded
// whatever it sends. A failed flush is logged and its tags are tried again at the next one;
// pulls never wait for a flush, nor fail with it.
//
// Replicas sharing storage write the same shards without a precondition, so one replica's write
// can replace another's (both read, both write). Each replica therefore reads back, at its next
// flush, what it wrote at the last one, and writes again whatever went missing: a lost tag is
// stored again one interval later. Intervals are jittered, so two replicas do not collide every
// time. This relies on a shard's read and write taking less than one interval.
//
// Pushed tags come with the push token and are few: they are written through to `tags/<name>`
// (where earlier versions recorded pulled tags too, which stay listed), so a push is listed at
// once, by every replica, and a deleted pushed tag is removed from it before the DELETE is
// answered. Listings come in the spec's order (case-insensitive, compareTags), pages by `n` and
// `last` in the same order.
import { DEFAULT_MAX_RECORDED_TAGS, DEFAULT_TAG_FLUSH_INTERVAL_SECONDS } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { silentLogger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { FlushSchedule } from './flush-schedule.ts';

/** The number of pulled-tag documents. Part of the storage layout: every replica must agree. */
export const SHARDS = 16;

/** Why a pulled tag was served but not recorded. */
export type DropReason = 'index_full' | 'pending_full';

export interface TagIndexOptions {
  /** How often pulled tags are written (NIXERY_TAG_FLUSH_INTERVAL), jittered by ±20 %. */
  flushIntervalMs?: number;
  /** Most pulled tags in storage, and waiting in memory (NIXERY_MAX_RECORDED_TAGS). */
  maxRecorded?: number;
  log?: Logger;
  /** Called for pulled tags that are not recorded. */
  onDropped?: (reason: DropReason, count: number) => void;
}

/** What `tags/<name>` holds: pushed tags (and pulled ones, recorded by earlier versions). */
interface TagDocument {
  tags: string[];
}

/** What `pulled-tags/<k>` holds: repository → its pulled tags, sorted. */
interface ShardDocument {
  repositories: Record<string, string[]>;
}

/** Tags by repository, with their total count. */
class TagSet {
  readonly byName = new Map<string, Set<string>>();
  size = 0;

  has(name: string, tag: string): boolean {
    return this.byName.get(name)?.has(tag) ?? false;
  }

  add(name: string, tag: string): boolean {
    let tags = this.byName.get(name);
    if (!tags) this.byName.set(name, (tags = new Set()));
    if (tags.has(tag)) return false;
    tags.add(tag);
    this.size++;
    return true;
  }

  *entries(): Generator<[string, string]> {
    for (const [name, tags] of this.byName) for (const tag of tags) yield [name, tag];
  }
}

export class TagIndex {
  private readonly storage: StorageBackend;
  private readonly flushIntervalMs: number;
  private readonly maxRecorded: number;
  private readonly shardCapacity: number;
  private readonly log: Logger;
  private readonly onDropped: (reason: DropReason, count: number) => void;
  /** Serialises the read-modify-write of `tags/<name>` per repository within this process. */
  private readonly pushes = new Map<string, Promise<void>>();
  /** Pulled tags not yet written. */
  private pending = new TagSet();
  /** Pulled tags written at the last flush, read back at the next one. */
  private written = new TagSet();
  /** What the running flush is writing or reading back: still listed meanwhile. */
  private inFlight: TagSet[] = [];
  /** Each shard as this process last read or wrote it: pulls of tags it holds need no record. */
  private readonly shards: (TagSet | undefined)[] = new Array(SHARDS);
  private readonly schedule: FlushSchedule;

  constructor(storage: StorageBackend, options: TagIndexOptions = {}) {
    this.storage = storage;
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_TAG_FLUSH_INTERVAL_SECONDS * 1000;
    this.schedule = new FlushSchedule(this.flushIntervalMs, () => this.flushNow());
    this.maxRecorded = options.maxRecorded ?? DEFAULT_MAX_RECORDED_TAGS;
    if (!(this.maxRecorded >= 1)) throw new RangeError('maxRecorded must be at least 1');
    this.shardCapacity = Math.ceil(this.maxRecorded / SHARDS);
    this.log = options.log ?? silentLogger;
    this.onDropped = options.onDropped ?? (() => {});
  }

  /** Every tag served for `name`: pushed, pulled and stored, and pulled here but not yet stored. In the spec's order (compareTags). */
  async list(name: string): Promise<string[]> {
    const [pushed, shard] = await Promise.all([this.storage.getDocument<TagDocument>(pushedKey(name)), this.readShard(shardOf(name))]);
    const tags = new Set<string>(Array.isArray(pushed?.tags) ? pushed.tags : []);
    for (const source of [shard, this.pending, this.written, ...this.inFlight]) for (const tag of source.byName.get(name) ?? []) tags.add(tag);
    return [...tags].sort(compareTags);
  }

  /** A page of the listing: the tags after `last`, at most `n`, and whether more follow. */
  async page(name: string, n: number | undefined, last: string | undefined): Promise<{ tags: string[]; more: boolean }> {
    return paginate(await this.list(name), n, last);
  }

  /** A served pull: noted in memory, written at the next flush. Never touches storage, never throws. */
  recordPulled(name: string, tag: string): void {
    if (this.pending.has(name, tag) || this.written.has(name, tag)) return;
    const shard = this.shards[shardOf(name)];
    if (shard?.has(name, tag)) return;
    if (shard && shard.size >= this.shardCapacity) return this.onDropped('index_full', 1);
    if (this.pending.size >= this.maxRecorded) return this.onDropped('pending_full', 1);
    this.pending.add(name, tag);
    this.schedule.soon();
  }

  /** A pushed tag: written through to `tags/<name>` before the push is answered. */
  recordPushed(name: string, tag: string): Promise<void> {
    return this.updatePushed(name, (tags) => (tags.includes(tag) ? null : [...tags, tag]));
  }

  /**
   * Deleted pushed tags: removed from `tags/<name>` before the delete is answered. A tag also
   * recorded as pulled stays listed: that name and tag were built, and a pull builds them again.
   */
  removePushed(name: string, removed: readonly string[]): Promise<void> {
    return this.updatePushed(name, (tags) => (tags.some((t) => removed.includes(t)) ? tags.filter((t) => !removed.includes(t)) : null));
  }

  /** The tags `tags/<name>` holds: every pushed tag (and pulled ones recorded by earlier versions). */
  async pushed(name: string): Promise<string[]> {
    const stored = await this.storage.getDocument<TagDocument>(pushedKey(name));
    return Array.isArray(stored?.tags) ? stored.tags.filter((t): t is string => typeof t === 'string') : [];
  }

  /** A read-modify-write of `tags/<name>`, one at a time per repository here; `change` returns null for no change. */
  private updatePushed(name: string, change: (tags: string[]) => string[] | null): Promise<void> {
    const previous = this.pushes.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      const tags = change(await this.pushed(name));
      if (tags) await this.storage.putDocument(pushedKey(name), { tags: tags.sort(compareTags) });
    });
    const settled = next.catch(() => {});
    this.pushes.set(name, settled);
    void settled.then(() => {
      if (this.pushes.get(name) === settled) this.pushes.delete(name);
    });
    return next;
  }

  /** Writes what is pending now (one flush at a time). Never rejects: failures are logged and retried. */
  flush(): Promise<void> {
    return this.schedule.flush();
  }

  /** The last flush, for shutdown: no timer runs afterwards. */
  async close(): Promise<void> {
    this.schedule.close();
    await this.flush();
  }

  private async flushNow(): Promise<void> {
    const pending = this.pending;
    const verify = this.written;
    this.pending = new TagSet();
    this.written = new TagSet();
    this.inFlight = [pending, verify];
    const work = new Map<number, { pending: [string, string][]; verify: [string, string][] }>();
    const shardWork = (name: string) => {
      const k = shardOf(name);
      let entry = work.get(k);
      if (!entry) work.set(k, (entry = { pending: [], verify: [] }));
      return entry;
    };
    for (const entry of verify.entries()) shardWork(entry[0]).verify.push(entry);
    for (const entry of pending.entries()) shardWork(entry[0]).pending.push(entry);

    let full = 0;
    let restored = 0;
    await Promise.all(
      [...work].map(async ([k, { pending: added, verify: check }]) => {
        try {
          const shard = await this.readShard(k);
          const wrote: [string, string][] = [];
          for (const [index, [name, tag]] of [...check, ...added].entries()) {
            if (shard.has(name, tag)) continue;
            if (shard.size >= this.shardCapacity) {
              full++;
              continue;
            }
            shard.add(name, tag);
            wrote.push([name, tag]);
            if (index < check.length) restored++;
          }
          if (wrote.length) await this.storage.putDocument(shardKey(k), renderShard(shard));
          this.shards[k] = shard;
          for (const [name, tag] of wrote) this.written.add(name, tag);
        } catch (error) {
          // Nothing of this shard is known to be stored: all of it waits for the next flush.
          let kept = 0;
          for (const [name, tag] of [...check, ...added]) kept += this.requeue(name, tag) ? 1 : 0;
          this.log.warn('writing pulled tags failed; they are tried again at the next flush', {
            document: shardKey(k),
            tags: kept,
            retryInSeconds: Math.round(this.flushIntervalMs / 1000),
            error,
          });
        }
      }),
    );
    this.inFlight = [];
    if (full) {
      this.onDropped('index_full', full);
      this.log.warn('the tag index is full: pulled tags are served but not listed', { dropped: full, maxRecordedTags: this.maxRecorded });
    }
    if (restored) this.log.info('pulled tags another writer had overwritten were written again', { tags: restored });
    if (this.pending.size || this.written.size) this.schedule.soon();
  }

  /** Back into pending after a failed flush, while it has room; false (and counted) if not. */
  private requeue(name: string, tag: string): boolean {
    if (this.pending.has(name, tag)) return true;
    if (this.pending.size >= this.maxRecorded) {
      this.onDropped('pending_full', 1);
      return false;
    }
    this.pending.add(name, tag);
    return true;
  }

  private async readShard(k: number): Promise<TagSet> {
    const stored = await this.storage.getDocument<ShardDocument>(shardKey(k));
    const shard = new TagSet();
    const repositories = stored?.repositories;
    if (repositories === undefined) return shard;
    if (repositories === null || typeof repositories !== 'object' || Array.isArray(repositories)) {
      this.log.warn('a pulled-tags document is not what this registry writes; it is replaced', { document: shardKey(k) });
      return shard;
    }
    for (const [name, tags] of Object.entries(repositories)) {
      if (Array.isArray(tags)) for (const tag of tags) if (typeof tag === 'string') shard.add(name, tag);
    }
    return shard;
  }
}

function pushedKey(name: string): string {
  return `tags/${name}`;
}

function shardKey(k: number): string {
  return `pulled-tags/${k}`;
}

function renderShard(shard: TagSet): ShardDocument {
  const repositories: Record<string, string[]> = {};
  for (const name of [...shard.byName.keys()].sort()) repositories[name] = [...shard.byName.get(name)!].sort();
  return { repositories };
}

/** FNV-1a of the repository name, modulo SHARDS: the same on every replica and version. */
export function shardOf(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % SHARDS;
}

/**
 * The spec's order of tags: "lexical order (i.e. case-insensitive alphanumeric order)"; tags that
 * differ in case only (`V1`, `v1`) come in code-point order, so the order is total.
 */
export function compareTags(a: string, b: string): number {
  const [la, lb] = [a.toLowerCase(), b.toLowerCase()];
  if (la !== lb) return la < lb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The distribution spec's pagination of tags in compareTags order: the tags after `last`, at most `n`. */
export function paginate(tags: string[], n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
  const after = last === undefined ? tags : tags.filter((t) => compareTags(t, last) > 0);
  if (n === undefined) return { tags: after, more: false };
  return { tags: after.slice(0, n), more: after.length > n };
}
