// The builder's result: one plain JSON document that `nixery build` prints, the server logs for
// every build, and the operator reads from a build Job's termination message.
import type { Platform } from '../image/platform.ts';
import type { Descriptor } from '../oci/image.ts';
import type { LayerCompression } from '../pack/compress.ts';
import type { BuildSbom } from './sbom.ts';

export interface BuildLayer {
  digest: string;
  diffId: string;
  size: number;
  /** Store paths packed in this layer; empty for the customisation layer. */
  storePaths: string[];
  kind: 'store-paths' | 'customisation';
  /** True when the layer was already stored and not packed again. */
  cached: boolean;
}

export interface BuildTimings {
  evaluateMs: number;
  realiseMs: number;
  graphMs: number;
  layeringMs: number;
  packingMs: number;
  /** Rendering and storing the SBOM and its referrer manifests, after the image's manifests. */
  sbomMs: number;
  totalMs: number;
}

export interface BuildResult {
  /** The image as requested: repository name and tag. */
  name: string;
  tag: string;
  packages: string[];
  system: string;
  /**
   * The default manifest: Docker schema 2 for gzip layers; the OCI manifest for zstd layers, whose
   * Docker schema 2 rendering (a gzip variant) may not exist yet.
   */
  digest: string;
  mediaType: string;
  size: number;
  /** How `layers` are compressed (NIXERY_LAYER_COMPRESSION); absent: gzip (and in results of earlier versions). */
  compression?: LayerCompression;
  /**
   * The image manifest in each rendering. A zstd image has no `docker` here: Docker schema 2 has
   * no zstd layers, and its gzip variant is made on demand and recorded apart (gzip-variant.ts).
   */
  manifests: { docker?: Descriptor; oci: Descriptor };
  config: Descriptor;
  layers: BuildLayer[];
  /** The SBOM's referrer manifest for `digest`: what `GET /v2/<name>/referrers/<digest>` lists. */
  sbomDigest: string;
  /** The SBOM document and its referrer manifest for each rendering of the image manifest. */
  sbom: BuildSbom;
  timings: BuildTimings;
  builderVersion: number;
  /** Present when the result came from the manifest cache; timings are then those of the original build. */
  fromCache?: true;
}

/** One platform's image of a multi-platform build: a complete image, with its own SBOM. */
export interface PlatformBuildResult extends BuildResult {
  platform: Platform;
}

/**
 * A name built for several platforms (NIXERY_PLATFORMS, `nixery build --platforms`): each
 * platform's image, and the image index naming them, stored in both renderings.
 */
export interface IndexBuildResult {
  name: string;
  tag: string;
  /** The OCI image index (its entries the platforms' OCI manifests). */
  digest: string;
  mediaType: string;
  size: number;
  /**
   * The index as Docker's manifest list (Docker manifests) and as the OCI image index; zstd images
   * have no Docker list until a client that reads only Docker's types asked for one.
   */
  manifests: { docker?: Descriptor; oci: Descriptor };
  /** In the index's order. */
  platforms: PlatformBuildResult[];
}
