// What the service layer refuses, as types with the facts they carry; the HTTP layer maps each
// to its distribution error code.
import type { Failure } from '../builder/outcome.ts';
import type { RefusedPackage } from '../image/package-policy.ts';

/** No manifest under that digest, or no pushed tag of that name. */
export class ManifestUnknownError extends Error {
  /** Set when the manifest was asked for by digest. */
  readonly digest: string | undefined;
  constructor(message: string, digest?: string) {
    super(message);
    this.name = 'ManifestUnknownError';
    this.digest = digest;
  }
}

/** A pushed manifest that is not one this registry takes. */
export class ManifestInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestInvalidError';
  }
}

/** A pushed manifest names blobs that are not stored. */
export class ManifestBlobsUnknownError extends Error {
  readonly missing: string[];
  constructor(missing: string[]) {
    super(`the manifest references blobs that were not pushed: ${missing.join(', ')}`);
    this.name = 'ManifestBlobsUnknownError';
    this.missing = missing;
  }
}

/** A manifest pushed by digest whose bytes have another digest. */
export class ManifestDigestMismatchError extends Error {
  constructor(digest: string, reference: string) {
    super(`the manifest's digest is ${digest}, not ${reference}`);
    this.name = 'ManifestDigestMismatchError';
  }
}

/** The registry's package policy refuses some packages of a name (image/package-policy.ts). */
export class PackagesRefusedError extends Error {
  readonly refused: RefusedPackage[];
  constructor(refused: RefusedPackage[]) {
    const describe = (r: RefusedPackage) => `${r.name} (${r.reason === 'denied' ? 'denied' : 'not in the allow list'})`;
    super(`this registry does not build ${refused.length === 1 ? 'the package' : 'the packages'} ${refused.map(describe).join(', ')}`);
    this.name = 'PackagesRefusedError';
    this.refused = refused;
  }
}

/** Building the image a tag names failed; `failure` says how (builder/outcome.ts). */
export class ImageBuildFailedError extends Error {
  /** `name:tag` as requested. */
  readonly image: string;
  readonly failure: Failure;
  constructor(image: string, failure: Failure, options?: ErrorOptions) {
    super(failure.message, options);
    this.name = 'ImageBuildFailedError';
    this.image = image;
    this.failure = failure;
  }
}
