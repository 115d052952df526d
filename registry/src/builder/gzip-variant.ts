// The gzip variant of a zstd image: what a client that reads only Docker schema 2 is served,
// since Docker's manifest has no zstd layer type. Made on the first request that needs it: each
// stored zstd layer decompressed and gzipped again as packing gzips (pack/gzip-stream.ts, the same
// block cut), so its bytes equal a gzip build's of the same tar; then the Docker manifest naming
// them (same config, same diff IDs) and that manifest's SBOM referrer, as builder/sbom.ts makes one
// per rendering. No Nix store is read, so it works after the store was collected.
//
// Recorded in `gzip-variants/<hex of the OCI manifest>` once every blob it names is stored, so the
// next request (and the next replica) finds it; garbage collection keeps its blobs while the OCI
// manifest is kept (service/gc.ts). One transcoding per image at a time in this process; across
// replicas two may transcode the same image at once, which costs only time: the work is
// deterministic, so both write the same blobs and the same document.
import { Readable } from 'node:stream';
import { mapLimited, SingleFlight } from '../cache/single-flight.ts';
import { TtlCache } from '../cache/ttl-cache.ts';
import type { Logger } from '../log/logger.ts';
import { renderManifest, sha256Digest, type Descriptor, type LayerBlob } from '../oci/image.ts';
import { MediaType } from '../oci/media-types.ts';
import { gzipFromZstd } from '../pack/index.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { DeliveryUrlError, deliveryStream } from '../storage/delivery-stream.ts';
import { BuildStorageError } from './errors.ts';
import type { BuildResult } from './result.ts';
import { storeSbomReferrer } from './sbom.ts';

/** How long a verified variant is reused without reading storage again (as the builder's manifest memo). */
const VARIANT_MEMO_TTL_MS = 5_000;
const VARIANT_MEMO_ENTRIES = 256;
/** Layers transcoded at once for one image: each is already spread over the compression pool. */
const LAYER_CONCURRENCY = 2;

export interface GzipVariantDocument {
  /** The zstd image's OCI manifest, whose variant this is. */
  of: string;
  /** The Docker schema 2 manifest naming `layers`. */
  docker: Descriptor;
  /** The gzip layers, in the image's order: the same diff IDs as the zstd layers. */
  layers: LayerBlob[];
  /** The SBOM referrer of `docker`. */
  sbomReferrer: Descriptor;
}

export function gzipVariantKey(ociDigest: string): string {
  return `gzip-variants/${ociDigest.slice('sha256:'.length)}`;
}

/** A stored zstd layer that does not decompress to its diff ID: the stored bytes are not the layer. */
export class LayerTranscodeError extends BuildStorageError {
  readonly layer: string;
  constructor(layer: string, message: string, options?: ErrorOptions) {
    super(`transcoding the zstd layer ${layer} to gzip failed: ${message}`, options);
    this.name = 'LayerTranscodeError';
    this.layer = layer;
  }
}

export class GzipVariants {
  private readonly storage: StorageBackend;
  private readonly log: Logger;
  private readonly flights = new SingleFlight<GzipVariantDocument>();
  private readonly memo: TtlCache<GzipVariantDocument | null>;

  constructor(storage: StorageBackend, log: Logger, now?: () => number) {
    this.storage = storage;
    this.log = log;
    this.memo = new TtlCache({ ttlMs: VARIANT_MEMO_TTL_MS, maxEntries: VARIANT_MEMO_ENTRIES, keep: (v) => v !== null, ...(now ? { now } : {}) });
  }

  /**
   * The gzip variant of a zstd image: the recorded one while every blob it names is stored, else
   * made now (concurrent calls share one). Rejects with BuildStorageError (LayerTranscodeError for
   * a stored layer that is not what the image says).
   */
  async of(image: BuildResult): Promise<GzipVariantDocument> {
    if (image.compression !== 'zstd') throw new RangeError(`${image.manifests.oci.digest} has gzip layers: it has no gzip variant, its own Docker manifest`);
    const oci = image.manifests.oci.digest;
    const recorded = await this.memo.get(oci, () => this.recorded(oci));
    if (recorded) return recorded;
    return this.flights.run(oci, async () => {
      const made = await this.make(image);
      this.memo.set(oci, made);
      return made;
    });
  }

  /**
   * The image as a reader of Docker's types needs it: a zstd image with its variant's Docker
   * manifest and SBOM referrer (its `layers` stay the zstd ones); a gzip image as it is.
   */
  async withDockerManifest<T extends BuildResult>(image: T): Promise<T & { manifests: { docker: Descriptor } }> {
    if (image.manifests.docker) return image as T & { manifests: { docker: Descriptor } };
    const variant = await this.of(image);
    return { ...image, manifests: { ...image.manifests, docker: variant.docker }, sbom: { ...image.sbom, referrers: { ...image.sbom.referrers, docker: variant.sbomReferrer } } };
  }

  private async recorded(oci: string): Promise<GzipVariantDocument | null> {
    const doc = await this.step('reading the gzip variant', () => this.storage.getDocument<GzipVariantDocument>(gzipVariantKey(oci)));
    if (!doc || doc.of !== oci || !Array.isArray(doc.layers)) return null;
    const digests = [doc.docker, doc.sbomReferrer, ...doc.layers].map((d) => d.digest);
    const present = await this.step('checking the gzip variant', () => Promise.all(digests.map((d) => this.storage.statBlob(d))));
    return present.every(Boolean) ? doc : null;
  }

  private async make(image: BuildResult): Promise<GzipVariantDocument> {
    const started = performance.now();
    const oci = image.manifests.oci.digest;
    const layers = await mapLimited(image.layers, LAYER_CONCURRENCY, (layer) => this.transcode(layer));
    const body = renderManifest('docker', image.config, layers);
    const docker = { mediaType: MediaType.dockerManifest, digest: sha256Digest(body), size: body.length };
    await this.step('storing the gzip variant manifest', () => this.storage.putBlob(body, { contentType: docker.mediaType, expectedDigest: docker.digest }));
    const sbomReferrer = await this.step('storing the gzip variant SBOM referrer', () => storeSbomReferrer(this.storage, image.sbom.document, docker));
    const doc: GzipVariantDocument = { of: oci, docker, layers, sbomReferrer };
    // Last: a recorded variant never names a blob not yet stored.
    await this.step('recording the gzip variant', () => this.storage.putDocument(gzipVariantKey(oci), doc));
    this.log.info('gzip variant of a zstd image made for Docker schema 2 clients', { image: oci, docker: docker.digest, layers: layers.length, ms: Math.round(performance.now() - started) });
    return doc;
  }

  /** One stored zstd layer as its gzip layer, stored; its decompressed tar must hash to the layer's diff ID. */
  private async transcode(layer: LayerBlob): Promise<LayerBlob> {
    const source = await this.open(layer.digest);
    const gzipped = gzipFromZstd(source);
    let stored: { digest: string; size: number };
    try {
      stored = await this.storage.putBlob(gzipped.stream, { contentType: MediaType.dockerLayer });
    } catch (cause) {
      throw new LayerTranscodeError(layer.digest, (cause as Error).message, { cause });
    }
    const diffId = await gzipped.diffId;
    // The stored blob is already there under its own digest; a wrong one is left to garbage collection.
    if (diffId !== layer.diffId) throw new LayerTranscodeError(layer.digest, `it decompresses to ${diffId}, not its diff ID ${layer.diffId}`);
    return { digest: stored.digest, diffId, size: stored.size };
  }

  private async open(digest: string): Promise<Readable> {
    const delivery = await this.step(`reading the zstd layer ${digest}`, () => this.storage.deliverBlob(digest));
    if (!delivery) throw new LayerTranscodeError(digest, 'the layer is no longer stored');
    // Object storage answers with a redirect: its signed URL is read as a client would.
    return deliveryStream(delivery).catch((cause: unknown) => {
      throw new LayerTranscodeError(digest, cause instanceof DeliveryUrlError ? cause.message : `reading it from storage failed: ${(cause as Error).message}`, { cause });
    });
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (cause) {
      if (cause instanceof BuildStorageError) throw cause;
      throw new BuildStorageError(`${what} failed: ${(cause as Error).message}`, { cause });
    }
  }
}
