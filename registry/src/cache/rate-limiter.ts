// A per-key rate limit: each key (a client) has a bucket of `perMinute` tokens that refills at
// `perMinute` a minute; taking from an empty bucket is refused with the wait until the next token.
// So a client may spend its whole minute's allowance at once, then one every 60/perMinute s.
import { BoundedMap } from './ttl-cache.ts';

export interface RateLimiterOptions {
  perMinute: number;
  /** Buckets remembered at most; the least recently used are forgotten first (a full bucket is no loss). */
  maxKeys?: number;
  now?: () => number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

export const DEFAULT_MAX_RATE_KEYS = 10_000;

export class RateLimiter {
  readonly perMinute: number;
  private readonly buckets: BoundedMap<string, Bucket>;
  private readonly now: () => number;
  /** Tokens per millisecond. */
  private readonly rate: number;

  constructor(options: RateLimiterOptions) {
    if (!Number.isInteger(options.perMinute) || options.perMinute < 1) throw new RangeError(`perMinute must be a positive integer, got ${options.perMinute}`);
    this.perMinute = options.perMinute;
    this.rate = options.perMinute / 60_000;
    this.buckets = new BoundedMap(options.maxKeys ?? DEFAULT_MAX_RATE_KEYS);
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes one token of `key`'s bucket if it has one. */
  take(key: string): RateDecision {
    const now = this.now();
    const bucket = this.buckets.get(key);
    const tokens = bucket ? Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * this.rate) : this.perMinute;
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return { allowed: true };
    }
    this.buckets.set(key, { tokens, at: now });
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.rate / 1000)) };
  }
}
