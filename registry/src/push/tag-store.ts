// Tags written by pushes. They take precedence over the package-name interpretation, so a
// declared image `toolbox:v1` is served while `git/htop:latest` is still built on demand.
//
// Every manifest request by tag asks for a pushed tag first, and nearly always finds none: the
// answers (misses included) are remembered for PUSHED_TAG_TTL_MS. A push or delete through this
// process is seen by its next request at once; one through another replica sharing the storage
// is seen here at most PUSHED_TAG_TTL_MS later.
import { TtlCache } from '../cache/ttl-cache.ts';
import type { StorageBackend } from '../storage/backend.ts';

export interface PushedTag {
  digest: string;
  mediaType: string;
  size: number;
}

export const PUSHED_TAG_TTL_MS = 1_000;
/** Names and tags come from clients; misses for made-up names must not grow memory without bound. */
const MAX_REMEMBERED = 10_000;

export interface PushedTagsOptions {
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class PushedTags {
  private readonly storage: StorageBackend;
  private readonly cache: TtlCache<PushedTag | null>;

  constructor(storage: StorageBackend, options: PushedTagsOptions = {}) {
    this.storage = storage;
    this.cache = new TtlCache({
      ttlMs: options.ttlMs ?? PUSHED_TAG_TTL_MS,
      maxEntries: options.maxEntries ?? MAX_REMEMBERED,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  get(name: string, tag: string): Promise<PushedTag | null> {
    const k = key(name, tag);
    return this.cache.get(k, () => this.storage.getDocument<PushedTag>(k));
  }

  async set(name: string, tag: string, value: PushedTag): Promise<void> {
    const k = key(name, tag);
    try {
      await this.storage.putDocument(k, value);
      this.cache.set(k, value);
    } catch (error) {
      // The write may or may not have landed: read storage next time.
      this.cache.delete(k);
      throw error;
    }
  }

  async delete(name: string, tag: string): Promise<boolean> {
    const k = key(name, tag);
    try {
      const deleted = await this.storage.deleteDocument(k);
      this.cache.set(k, null);
      return deleted;
    } catch (error) {
      this.cache.delete(k);
      throw error;
    }
  }
}

function key(name: string, tag: string): string {
  return `pushed/${name}/_tags/${tag}`;
}
