// Digests in request paths and parameters, checked before any service sees them.
import { isSha256Digest } from '../oci/image.ts';
import { RegistryError } from './errors.ts';

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** A digest to read by (manifests, blobs): the spec's grammar, sha256 in its canonical form. */
export function checkDigest(reference: string): string {
  if (!DIGEST.test(reference)) throw new RegistryError('DIGEST_INVALID', `invalid digest ${JSON.stringify(reference)}`);
  if (reference.startsWith('sha256:') && !isSha256Digest(reference)) {
    throw new RegistryError('DIGEST_INVALID', `invalid sha256 digest ${JSON.stringify(reference)}: expected 64 lower-case hex digits`);
  }
  return reference;
}

/** The digest a pushed blob is checked against: sha256 only. */
export function checkUploadDigest(digest: string): string {
  if (!isSha256Digest(digest)) throw new RegistryError('DIGEST_INVALID', `expected a sha256 digest, got ${JSON.stringify(digest)}`);
  return digest;
}
