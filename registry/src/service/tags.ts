// The tags service: which tags have been served (built or pushed) for a repository, for the
// distribution API's tag listing. Every package list is a potential image, so this lists what
// exists, not what could.
import type { StorageBackend } from '../storage/backend.ts';
import { BoundedMap } from '../cache/ttl-cache.ts';

/**
 * Every manifest request records its tag; a tag known to be in the document needs no read.
 * Tags are never removed from the index, so "recorded" only goes stale if another replica's
 * concurrent read-modify-write dropped it: re-checking after this long repairs that.
 */
export const RECORDED_TAG_TTL_MS = 60_000;
const MAX_RECORDED = 10_000;

export interface TagIndexOptions {
  recordedTtlMs?: number;
  maxRecorded?: number;
  now?: () => number;
}

interface TagDocument {
  tags: string[];
}

export class TagIndex {
  private readonly storage: StorageBackend;
  /** Serialises read-modify-write per repository within this process. */
  private readonly pending = new Map<string, Promise<void>>();
  /** `name:tag` → when it was last seen in the stored document. */
  private readonly recorded: BoundedMap<string, number>;
  private readonly recordedTtlMs: number;
  private readonly now: () => number;

  constructor(storage: StorageBackend, options: TagIndexOptions = {}) {
    this.storage = storage;
    this.recorded = new BoundedMap(options.maxRecorded ?? MAX_RECORDED);
    this.recordedTtlMs = options.recordedTtlMs ?? RECORDED_TAG_TTL_MS;
    this.now = options.now ?? (() => performance.now());
  }

  async list(name: string): Promise<string[]> {
    return (await this.storage.getDocument<TagDocument>(key(name)))?.tags ?? [];
  }

  /** A page of the listing: the tags after `last`, at most `n`, and whether more follow. */
  async page(name: string, n: number | undefined, last: string | undefined): Promise<{ tags: string[]; more: boolean }> {
    return paginate(await this.list(name), n, last);
  }

  record(name: string, tag: string): Promise<void> {
    const seen = this.recorded.get(`${name}:${tag}`);
    if (seen !== undefined && this.now() - seen < this.recordedTtlMs) return Promise.resolve();
    const previous = this.pending.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      const tags = await this.list(name);
      if (!tags.includes(tag)) await this.storage.putDocument(key(name), { tags: [...tags, tag].sort() });
      this.recorded.set(`${name}:${tag}`, this.now());
    });
    const settled = next.catch(() => {});
    this.pending.set(name, settled);
    void settled.then(() => {
      if (this.pending.get(name) === settled) this.pending.delete(name);
    });
    return next;
  }
}

function key(name: string): string {
  return `tags/${name}`;
}

/** The distribution spec's pagination: tags after `last`, at most `n`. */
export function paginate(tags: string[], n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
  const after = last === undefined ? tags : tags.filter((t) => t > last);
  if (n === undefined) return { tags: after, more: false };
  return { tags: after.slice(0, n), more: after.length > n };
}
