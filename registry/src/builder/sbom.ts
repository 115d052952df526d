// A built image's SBOM, stored after its manifests: the CycloneDX document (sbom/cyclonedx.ts),
// the empty config, and one referrer manifest (oci/referrer.ts) per rendering of the image
// manifest — Docker schema 2 and OCI, whichever a client was served — recorded as that digest's
// referrer (built-referrers.ts). A handful of small writes, no Nix and no store reads.
import type { PackageSource } from '../config/package-source.ts';
import { isCommitHash } from '../nix/git-ref.ts';
import { sha256Digest, type Descriptor } from '../oci/image.ts';
import { MediaType } from '../oci/media-types.ts';
import { EMPTY_JSON, renderReferrer } from '../oci/referrer.ts';
import { CYCLONEDX_MEDIA_TYPE, type SbomSource } from '../sbom/cyclonedx.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { recordBuiltReferrers } from './built-referrers.ts';
import type { Fingerprint } from './source-fingerprint.ts';

export interface BuildSbom {
  /** The CycloneDX 1.5 JSON document. */
  document: Descriptor;
  /** The referrer manifest of each rendering of the image manifest (its `subject`); a zstd image's Docker one is its gzip variant's (gzip-variant.ts). */
  referrers: { docker?: Descriptor; oci: Descriptor };
}

/**
 * Stores an image's SBOM (a CycloneDX document, renderCycloneDx's) once the image's manifests are
 * stored, and lists it among each manifest's referrers. Rejects with the storage's error.
 */
export async function storeSbom(storage: StorageBackend, sbom: Buffer, manifests: { docker?: Descriptor; oci: Descriptor }): Promise<BuildSbom> {
  const [document] = await Promise.all([put(storage, sbom, CYCLONEDX_MEDIA_TYPE), put(storage, EMPTY_JSON, MediaType.ociEmpty)]);
  const [oci, docker] = await Promise.all([storeSbomReferrer(storage, document, manifests.oci), ...(manifests.docker ? [storeSbomReferrer(storage, document, manifests.docker)] : [])]);
  return { document, referrers: { oci: oci!, ...(docker ? { docker } : {}) } };
}

/**
 * The referrer manifest of a stored SBOM document for one rendering of the image manifest, listed
 * among that manifest's referrers: per rendering at build time, and for a zstd image's gzip
 * variant when that is made. The SBOM document and the empty config must be stored already.
 */
export async function storeSbomReferrer(storage: StorageBackend, document: Descriptor, subject: Descriptor): Promise<Descriptor> {
  // The manifest after the blobs it names, the index entry after the manifest.
  const referrer = await put(storage, renderReferrer({ artifactType: CYCLONEDX_MEDIA_TYPE, blob: document, subject }), MediaType.ociManifest);
  await recordBuiltReferrers(storage, subject.digest, [{ ...referrer, artifactType: CYCLONEDX_MEDIA_TYPE }]);
  return referrer;
}

/**
 * The package source as the SBOM names it: where it is, without credentials, and which state of
 * it the source fingerprint saw (a channel's named commit or its tarball's validator, the git
 * commit, the path's content hash).
 */
export function sbomSource(source: PackageSource, fingerprint: Fingerprint): SbomSource {
  const after = (prefix: string) => (fingerprint.key?.startsWith(prefix) ? fingerprint.key.slice(prefix.length) : undefined);
  const described = (location: string, revision: string | undefined): SbomSource => ({
    type: source.type,
    location,
    ...(revision === undefined ? {} : { revision }),
  });
  switch (source.type) {
    case 'git':
      return described(withoutCredentials(source.url), fingerprint.gitSpec?.rev);
    case 'path':
      return described(source.path, after(`path:${source.path}#`));
    case 'channel': {
      const url = `${source.baseUrl}/${source.channel}.tar.gz`;
      return described(withoutCredentials(url), isCommitHash(source.channel) ? source.channel : after(`channel:${url}#`));
    }
  }
}

/** A URL with a user name or password loses them; anything else (an scp-like git address) is kept. */
export function withoutCredentials(location: string): string {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return location;
  }
  if (url.username === '' && url.password === '') return location;
  url.username = '';
  url.password = '';
  return url.href;
}

async function put(storage: StorageBackend, bytes: Buffer, contentType: string): Promise<Descriptor> {
  const { digest, size } = await storage.putBlob(bytes, { contentType, expectedDigest: sha256Digest(bytes) });
  return { mediaType: contentType, digest, size };
}
