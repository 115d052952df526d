// A short-lived, size-capped memo in front of storage reads that every manifest request repeats
// (pushed tags, manifest cache entries, recorded tags). Storage stays the truth: entries expire
// after their TTL, so other replicas' writes are seen at most that much later; this process's own
// writes go through set()/delete() and are seen at once.

/** Map insertion order as recency: a hit moves its key to the end, the front is evicted first. */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  readonly maxEntries: number;

  constructor(maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }
}

export interface TtlCacheOptions<V> {
  ttlMs: number;
  maxEntries: number;
  /** Values for which this returns false are returned but not remembered (e.g. a cache miss). */
  keep?: (value: V) => boolean;
  now?: () => number;
}

interface Load<V> {
  promise: Promise<V>;
  /** Set when set()/delete() ran after the load began: its (older) result must not be remembered. */
  superseded: boolean;
}

export class TtlCache<V> {
  private readonly entries: BoundedMap<string, { value: V; expires: number }>;
  private readonly loads = new Map<string, Load<V>>();
  private readonly ttlMs: number;
  private readonly keep: (value: V) => boolean;
  private readonly now: () => number;

  constructor(options: TtlCacheOptions<V>) {
    this.entries = new BoundedMap(options.maxEntries);
    this.ttlMs = options.ttlMs;
    this.keep = options.keep ?? (() => true);
    this.now = options.now ?? (() => performance.now());
  }

  get size(): number {
    return this.entries.size;
  }

  /** The remembered value, else the result of `load`; concurrent misses for one key share one load. */
  get(key: string, load: () => Promise<V>): Promise<V> {
    const entry = this.entries.get(key);
    if (entry && entry.expires > this.now()) return Promise.resolve(entry.value);
    const running = this.loads.get(key);
    if (running) return running.promise;
    const current: Load<V> = { superseded: false, promise: undefined as unknown as Promise<V> };
    current.promise = (async () => {
      try {
        // Deferred a tick, so even a load that throws at once is registered before it is cleared.
        const value = await Promise.resolve().then(load);
        if (!current.superseded && this.keep(value)) this.entries.set(key, { value, expires: this.now() + this.ttlMs });
        return value;
      } finally {
        if (this.loads.get(key) === current) this.loads.delete(key);
      }
    })();
    this.loads.set(key, current);
    return current.promise;
  }

  /** What this process has just written: seen by every later get(), never overwritten by an older load. */
  set(key: string, value: V): void {
    this.supersede(key);
    if (this.keep(value)) this.entries.set(key, { value, expires: this.now() + this.ttlMs });
    else this.entries.delete(key);
  }

  /** Forgets the key; the next get() reads storage again. */
  delete(key: string): void {
    this.supersede(key);
    this.entries.delete(key);
  }

  private supersede(key: string): void {
    const running = this.loads.get(key);
    if (running) {
      running.superseded = true;
      // Later gets must not join a read that began before the write.
      this.loads.delete(key);
    }
  }
}
