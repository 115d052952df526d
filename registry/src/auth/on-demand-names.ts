// Which repository names are on-demand package lists: with on-demand builds on, a name whose
// packages are all found in the source (and allowed by the package policy) is an image anyone may
// pull, built from the name. Such names are pull-only for everyone but the administrator, so no one
// can push an image that others pull believing it is the packages the name lists.
//
// The builder answers from its remembered evaluations (one Nix evaluation for a name list it has
// not seen). With a git source the default branch decides (the tag `latest`): a repository name
// is checked without a tag, since its blobs are pushed before any tag is named.
import { TtlCache } from '../cache/ttl-cache.ts';
import { ALWAYS_INCLUDED, imageFromName, type ImageSpec } from '../image/name.ts';
import { refusedPackages, type CompiledPackagePolicy } from '../image/package-policy.ts';

export interface NameResolver {
  /** Whether every package the image names is found (builder.ts's resolves). */
  resolves(image: ImageSpec): Promise<boolean>;
}

export interface OnDemandNamesOptions {
  /** NIXERY_ON_DEMAND: off, no name is an on-demand name. */
  onDemand: boolean;
  packagePolicy: CompiledPackagePolicy;
  resolver: NameResolver;
  /** How long an answer is reused (the source may gain or lose packages). */
  ttlMs?: number;
  now?: () => number;
}

/** The source could not be asked (Nix failed or timed out): whether the name is one is unknown. */
export class OnDemandCheckError extends Error {
  readonly repository: string;
  constructor(repository: string, cause: unknown) {
    super(`cannot tell now whether ${repository} is an on-demand name: ${(cause as Error).message}`, { cause });
    this.name = 'OnDemandCheckError';
    this.repository = repository;
  }
}

/** A push checks its name once per blob: the answer is kept a little while. */
const DEFAULT_TTL_MS = 30_000;
const ENTRIES = 1024;

export class OnDemandNames {
  private readonly options: OnDemandNamesOptions;
  private readonly answers: TtlCache<boolean>;

  constructor(options: OnDemandNamesOptions) {
    this.options = options;
    this.answers = new TtlCache({ ttlMs: options.ttlMs ?? DEFAULT_TTL_MS, maxEntries: ENTRIES, ...(options.now ? { now: options.now } : {}) });
  }

  /** Throws OnDemandCheckError when the source cannot be evaluated now (nothing is known then). */
  async isOnDemand(name: string): Promise<boolean> {
    if (!this.options.onDemand) return false;
    let image: ImageSpec;
    try {
      image = imageFromName(name, 'latest');
    } catch {
      return false;
    }
    const named = image.packages.filter((p) => !(ALWAYS_INCLUDED as readonly string[]).includes(p));
    // A name the registry refuses to build is not served from the name, so it is no on-demand name.
    if (refusedPackages(this.options.packagePolicy, named).length > 0) return false;
    return this.answers.get(name, () => this.options.resolver.resolves(image)).catch((error: unknown) => {
      throw new OnDemandCheckError(name, error);
    });
  }
}
