// A built image's SBOM, stored after its manifests: the CycloneDX document (sbom/cyclonedx.ts),
// the empty config, and one referrer manifest (oci/referrer.ts) per rendering of the image
// manifest — Docker schema 2 and OCI, whichever a client was served — recorded as that digest's
// referrer (built-referrers.ts). A handful of small writes, no Nix and no store reads.
import type { PackageSource } from '../config/package-source.ts';
import { isCommitHash } from '../nix/git-ref.ts';
import { sha256Digest, type Descriptor } from '../oci/image.ts';
import { MediaType, type ManifestFormat } from '../oci/media-types.ts';
import { EMPTY_JSON, renderReferrer } from '../oci/referrer.ts';
import { CYCLONEDX_MEDIA_TYPE, type SbomSource } from '../sbom/cyclonedx.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { recordBuiltReferrers } from './built-referrers.ts';
import type { Fingerprint } from './source-fingerprint.ts';

export interface BuildSbom {
  /** The CycloneDX 1.5 JSON document. */
  document: Descriptor;
  /** The referrer manifest of each rendering of the image manifest (its `subject`). */
  referrers: Record<ManifestFormat, Descriptor>;
}

/**
 * Stores an image's SBOM (a CycloneDX document, renderCycloneDx's) once the image's manifests are
 * stored, and lists it among each manifest's referrers. Rejects with the storage's error.
 */
export async function storeSbom(storage: StorageBackend, sbom: Buffer, manifests: Record<ManifestFormat, Descriptor>): Promise<BuildSbom> {
  const [document] = await Promise.all([put(storage, sbom, CYCLONEDX_MEDIA_TYPE), put(storage, EMPTY_JSON, MediaType.ociEmpty)]);
  // The manifests after the blobs they name, the index entries after the manifests.
  const [docker, oci] = await Promise.all(
    (['docker', 'oci'] as const).map((format) =>
      put(storage, renderReferrer({ artifactType: CYCLONEDX_MEDIA_TYPE, blob: document, subject: manifests[format] }), MediaType.ociManifest),
    ),
  );
  const referrers = { docker: docker!, oci: oci! };
  await Promise.all(
    (['docker', 'oci'] as const).map((format) =>
      recordBuiltReferrers(storage, manifests[format].digest, [{ ...referrers[format], artifactType: CYCLONEDX_MEDIA_TYPE }]),
    ),
  );
  return { document, referrers };
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
