// The package source's fingerprint, remembered between manifest requests. Computing it costs a
// walk of the whole tree for NIXERY_PKGS_PATH (40,000 files: ~0.2-0.5 s of CPU), a `git ls-remote`
// for NIXERY_PKGS_REPO, a HEAD request for NIXERY_CHANNEL; doing that on every request held a
// 40,000-file source to 8 manifests/s. How stale an answer may be is RevalidatingCache's rule.
import type { PackageSource } from '../config/package-source.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { isCommitHash } from '../nix/git-ref.ts';
import { RevalidatingCache } from '../cache/revalidating-cache.ts';
import { fingerprintSource, type Fingerprint, type FingerprintOptions } from './source-fingerprint.ts';

/** A fingerprint younger than this is used without looking at the source again. */
export const FINGERPRINT_FRESH_MS = 1_000;
/** No request is answered from a fingerprint whose lookup began longer ago than this (README: Configuration). */
export const FINGERPRINT_MAX_STALE_MS = 5_000;
/** Git tags are chosen by clients: remember the most recently used ones only. */
const MAX_GIT_REFS = 1_000;

export type FingerprintLookup = (source: PackageSource, tag: string, options: FingerprintOptions) => Promise<Fingerprint>;

export interface SourceFingerprintsOptions {
  timeoutSeconds: number;
  log?: Logger;
  freshMs?: number;
  maxStaleMs?: number;
  now?: () => number;
  /** Tests count or fail lookups through this. */
  lookup?: FingerprintLookup;
}

export class SourceFingerprints {
  private readonly source: PackageSource;
  private readonly options: SourceFingerprintsOptions;
  private readonly cache: RevalidatingCache<Fingerprint>;
  private readonly lookup: FingerprintLookup;

  constructor(source: PackageSource, options: SourceFingerprintsOptions) {
    this.source = source;
    this.options = options;
    this.lookup = options.lookup ?? fingerprintSource;
    this.cache = new RevalidatingCache({
      freshMs: options.freshMs ?? FINGERPRINT_FRESH_MS,
      maxStaleMs: options.maxStaleMs ?? FINGERPRINT_MAX_STALE_MS,
      maxEntries: source.type === 'git' ? MAX_GIT_REFS : 1,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  get(tag: string): Promise<Fingerprint> {
    const lookup = () =>
      this.lookup(this.source, tag, { timeoutSeconds: this.options.timeoutSeconds, log: this.options.log ?? silentLogger });
    // Only git reads the tag. A commit hash names itself, but whether a trusted ref still reaches
    // it is looked up every time (nix/git-trust.ts remembers that by its own rules).
    if (this.source.type !== 'git') return this.cache.get('', lookup);
    if (isCommitHash(tag)) return lookup();
    return this.cache.get(tag, lookup);
  }
}
