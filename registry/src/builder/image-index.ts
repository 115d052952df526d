// One name for several platforms: each platform's image built by the builder as any image is (a
// job of its bounded queue, the client's rate, the closure limit, the caches: an `arm64/hello`
// and the arm64 entry of `hello` are one build), then the image index naming them, rendered as the
// OCI image index and as Docker's manifest list and stored once (oci/image-index.ts). Zstd images
// have no Docker manifest of their own: their index is the OCI one alone until a client that reads
// only Docker's types asks, and the caller gives the images with their gzip variants
// (gzip-variant.ts); the Docker list is then stored and added to the index's record.
import type { ImageSpec } from '../image/name.ts';
import { PLATFORMS, type Platform } from '../image/platform.ts';
import { sha256Digest, type Descriptor } from '../oci/image.ts';
import { INDEX_MEDIA_TYPE, renderIndex } from '../oci/image-index.ts';
import type { ManifestFormat } from '../oci/media-types.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { BoundedMap } from '../cache/ttl-cache.ts';
import type { BuildOptions, ImageBuilder } from './builder.ts';
import { BuildStorageError } from './errors.ts';
import type { IndexBuildResult, PlatformBuildResult } from './result.ts';

/** Index digests known to be stored, so that a pull of a built index costs no storage round trip. */
const STORED_INDEX_ENTRIES = 1024;

/**
 * The document recording a built index (both renderings), keyed by its OCI digest's hex: what
 * garbage collection (service/gc.ts) keeps it by, as manifest cache entries keep built images. A
 * client may pull the index by digest long after the pull by tag that built it.
 */
export function builtIndexKey(ociDigest: string): string {
  return `built-indexes/${ociDigest.slice('sha256:'.length)}`;
}

export interface BuiltIndexDocument {
  /** `docker` absent: the images are zstd ones and no Docker list was asked for yet. */
  manifests: { docker?: Descriptor; oci: Descriptor };
  /** The name it was first built by: garbage collection's per-name limit (absent in documents of earlier versions). */
  name?: string;
}

/**
 * Builds `image` for each platform, all at once (the builder's queue bounds the work). The first
 * failure is thrown, and the other platforms' builds are no longer waited for: one still queued
 * for nobody else is dropped, one running finishes into the caches.
 */
export async function buildPlatforms(
  builder: Pick<ImageBuilder, 'build'>,
  image: ImageSpec,
  platforms: readonly Platform[],
  options: BuildOptions = {},
): Promise<PlatformBuildResult[]> {
  const failed = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, failed.signal]) : failed.signal;
  return Promise.all(
    platforms.map(async (platform) => {
      try {
        const result = await builder.build({ ...image, arch: PLATFORMS[platform] }, { ...options, signal });
        return { ...result, platform };
      } catch (error) {
        failed.abort(error);
        throw error;
      }
    }),
  );
}

/**
 * The index of the platforms' images, in the given rendering: each entry that rendering's manifest.
 * RangeError when an image has none in it (a zstd image without its gzip variant, in Docker's).
 */
export function renderPlatformIndex(format: ManifestFormat, images: readonly PlatformBuildResult[]): Buffer {
  return renderIndex(
    format,
    images.map((image) => {
      const manifest = image.manifests[format];
      if (!manifest) throw new RangeError(`the ${image.platform} image ${image.digest} has no ${format} manifest`);
      return { manifest, platform: { os: 'linux', architecture: PLATFORMS[image.platform].imageArch } };
    }),
  );
}

/** Whether every image has a manifest in that rendering, so an index of them can be rendered in it. */
export function renderable(format: ManifestFormat, images: readonly PlatformBuildResult[]): boolean {
  return images.every((image) => image.manifests[format] !== undefined);
}

/**
 * A platform's image as the OCI index names it: its `digest`, `mediaType` and `size` those of its
 * OCI manifest, `sbomDigest` that manifest's SBOM referrer (a BuildResult's are the Docker one's).
 */
export function asIndexed(image: PlatformBuildResult): PlatformBuildResult {
  const { digest, mediaType, size } = image.manifests.oci;
  return { ...image, digest, mediaType, size, sbomDigest: image.sbom.referrers.oci.digest };
}

export class ImageIndexes {
  private readonly storage: StorageBackend;
  private readonly stored = new BoundedMap<string, true>(STORED_INDEX_ENTRIES);

  constructor(storage: StorageBackend) {
    this.storage = storage;
  }

  /**
   * The index of the platforms' images, stored in every rendering they all have — both, unless
   * they are zstd images without their gzip variants: then the OCI index alone — (once: a stored
   * one is only looked at) so that clients fetch it, and the images it names, by digest.
   */
  async store(name: string, tag: string, images: readonly PlatformBuildResult[]): Promise<IndexBuildResult> {
    const [oci, docker] = await Promise.all([
      this.put('oci', renderPlatformIndex('oci', images)),
      ...(renderable('docker', images) ? [this.put('docker', renderPlatformIndex('docker', images))] : []),
    ]);
    await this.record(name, oci!, docker);
    return { name, tag, digest: oci!.digest, mediaType: oci!.mediaType, size: oci!.size, manifests: { oci: oci!, ...(docker ? { docker } : {}) }, platforms: images.map(asIndexed) };
  }

  /**
   * Written once per index and rendering set (the memo), after the blobs: a document never names a
   * missing blob. A record without the Docker list gains it once that is stored.
   */
  private async record(name: string, oci: Descriptor, docker: Descriptor | undefined): Promise<void> {
    const key = builtIndexKey(oci.digest);
    const memoKey = docker ? `${key} docker` : key;
    if (this.stored.get(memoKey)) return;
    try {
      const recorded = await this.storage.getDocument<BuiltIndexDocument>(key);
      if (!recorded || (docker && !recorded.manifests?.docker)) {
        await this.storage.putDocument(key, { manifests: { oci, ...(docker ? { docker } : {}) }, name: recorded?.name ?? name } satisfies BuiltIndexDocument);
      }
    } catch (cause) {
      throw new BuildStorageError(`recording the image index ${oci.digest} failed: ${(cause as Error).message}`, { cause });
    }
    this.stored.set(memoKey, true);
  }

  private async put(format: ManifestFormat, bytes: Buffer): Promise<Descriptor> {
    const descriptor = { mediaType: INDEX_MEDIA_TYPE[format], digest: sha256Digest(bytes), size: bytes.length };
    if (this.stored.get(descriptor.digest)) return descriptor;
    try {
      if (!(await this.storage.statBlob(descriptor.digest))) {
        await this.storage.putBlob(bytes, { contentType: descriptor.mediaType, expectedDigest: descriptor.digest });
      }
    } catch (cause) {
      throw new BuildStorageError(`storing the image index ${descriptor.digest} failed: ${(cause as Error).message}`, { cause });
    }
    this.stored.set(descriptor.digest, true);
    return descriptor;
  }
}
