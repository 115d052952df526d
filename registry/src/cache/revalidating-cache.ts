// Remembers an expensive lookup whose answer can change at any time (walking a package tree,
// `git ls-remote`, a channel's ETag) and bounds how stale a returned answer can be:
//
// - younger than `freshMs`: returned as is;
// - older, with a refresh already running and younger than `maxStaleMs`: the previous answer is
//   returned at once (stale-while-revalidate), so a burst of requests never waits on the walk;
// - otherwise the caller starts (or joins) the refresh and waits for it.
//
// So an idle registry answers the first request after a change with the new state, and under
// load every answer comes from a lookup that began less than `maxStaleMs` before the request
// (or from the one refresh that was running when it arrived). At most one refresh per key runs at
// a time. Ages count from when a lookup began, since a change during the lookup may be missed.
// Failed lookups are never remembered: they reach the callers that waited for them, and the
// previous answer ages on until someone waits for a new attempt.
import { BoundedMap } from './ttl-cache.ts';

export interface RevalidatingCacheOptions {
  freshMs: number;
  maxStaleMs: number;
  maxEntries: number;
  now?: () => number;
}

interface Entry<V> {
  value?: { value: V; startedAt: number };
  refresh?: Promise<V>;
}

export class RevalidatingCache<V> {
  private readonly entries: BoundedMap<string, Entry<V>>;
  private readonly freshMs: number;
  private readonly maxStaleMs: number;
  private readonly now: () => number;

  constructor(options: RevalidatingCacheOptions) {
    if (options.maxStaleMs < options.freshMs) throw new RangeError('maxStaleMs must not be shorter than freshMs');
    this.entries = new BoundedMap(options.maxEntries);
    this.freshMs = options.freshMs;
    this.maxStaleMs = options.maxStaleMs;
    this.now = options.now ?? (() => performance.now());
  }

  get(key: string, lookup: () => Promise<V>): Promise<V> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = {};
      this.entries.set(key, entry);
    }
    const known = entry.value;
    if (known) {
      const age = this.now() - known.startedAt;
      if (age < this.freshMs) return Promise.resolve(known.value);
      if (entry.refresh && age < this.maxStaleMs) return Promise.resolve(known.value);
    }
    return entry.refresh ?? this.refresh(key, entry, lookup);
  }

  private refresh(key: string, entry: Entry<V>, lookup: () => Promise<V>): Promise<V> {
    const startedAt = this.now();
    const refresh = (async () => {
      try {
        // Deferred a tick, so even a lookup that throws at once finds `entry.refresh` set and clears it.
        const value = await Promise.resolve().then(lookup);
        entry.value = { value, startedAt };
        // The entry may have been evicted meanwhile; the answer is still worth keeping.
        this.entries.set(key, entry);
        return value;
      } finally {
        entry.refresh = undefined;
      }
    })();
    entry.refresh = refresh;
    return refresh;
  }
}
