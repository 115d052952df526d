// An image index: one name, an image per platform. Rendered as the OCI image index (its entries
// OCI image manifests) or as Docker's manifest list (its entries Docker schema 2 manifests), for
// clients that read only Docker's types. Pure and byte-stable, like oci/image.ts: the same images
// in the same order give the same bytes, hence the same digest, however often it is rendered.
import type { Descriptor } from './image.ts';
import { MediaType, type ManifestFormat } from './media-types.ts';

export const INDEX_MEDIA_TYPE: Record<ManifestFormat, string> = {
  docker: MediaType.dockerManifestList,
  oci: MediaType.ociIndex,
};

export interface IndexEntry {
  /** The platform's image manifest, in the rendering the index format takes. */
  manifest: Descriptor;
  /** As Go names them (GOOS, GOARCH); no variant: arm64 means v8, which clients assume when none is given. */
  platform: { os: 'linux'; architecture: 'amd64' | 'arm64' };
}

export function renderIndex(format: ManifestFormat, entries: IndexEntry[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: INDEX_MEDIA_TYPE[format],
      manifests: entries.map(({ manifest, platform }) => ({
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: platform.architecture, os: platform.os },
      })),
    }),
  );
}
