// Manifests by digest and by tag, pushed and deleted, and the referrers of a digest. The registry's
// rules for them live here: a pushed tag wins over reading the name as a package list, which
// happens only with on-demand builds on and for packages the package policy allows; a served build
// notes its tag for the listing without writing to storage (a pull never writes); with several
// platforms (NIXERY_PLATFORMS) a name is an image index of one image per platform; a pushed manifest
// may only name stored blobs; one with a `subject` is listed among that digest's referrers, as a
// built image's SBOM is among its own (builder/built-referrers.ts); a DELETE by digest removes the repository's tags of it, and the bytes once no repository holds it.
import type { BuildOptions, ImageBuilder } from '../builder/builder.ts';
import { builtReferrers } from '../builder/built-referrers.ts';
import { buildPlatforms, ImageIndexes, renderPlatformIndex } from '../builder/image-index.ts';
import { GzipVariants } from '../builder/gzip-variant.ts';
import type { LayerCompression } from '../pack/compress.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { BuildRejectedError } from '../builder/errors.ts';
import { classifyFailure } from '../builder/outcome.ts';
import { ALWAYS_INCLUDED, ARM64, imageFromName, InvalidTagError, isValidRepositoryName, validateTag } from '../image/name.ts';
import { DEFAULT_PLATFORMS, PLATFORMS, type Platform } from '../image/platform.ts';
import { ALLOW_EVERYTHING, refusedPackages, type CompiledPackagePolicy } from '../image/package-policy.ts';
import { isSha256Digest, renderManifest, sha256Digest } from '../oci/image.ts';
import { MANIFEST_MEDIA_TYPE, MediaType, type ManifestFormat } from '../oci/media-types.ts';
import { isKeyedDigest, PushedManifests, type ReferrerDescriptor } from '../push/manifest-store.ts';
import type { PushedTags } from '../push/tag-store.ts';
import type { StorageBackend } from '../storage/backend.ts';
import {
  ImageBuildFailedError,
  ManifestBlobsUnknownError,
  ManifestDigestMismatchError,
  ManifestInvalidError,
  ManifestUnknownError,
  PackagesRefusedError,
} from './errors.ts';
import type { PullRecorder } from './pulls.ts';
import type { TagIndex } from './tags.ts';

const IMAGE_MANIFESTS = new Set<string>([MediaType.dockerManifest, MediaType.ociManifest]);
const INDEXES = new Set<string>([MediaType.dockerManifestList, MediaType.ociIndex]);
const MANIFEST_TYPES = new Set<string>([...IMAGE_MANIFESTS, ...INDEXES]);

export interface Manifest {
  body: Buffer;
  mediaType: string;
  digest: string;
}

export interface ManifestsDeps {
  storage: StorageBackend;
  builder: ImageBuilder;
  pushedTags: PushedTags;
  tags: TagIndex;
  /** False: only pushed tags are served and nothing is built (NIXERY_ON_DEMAND). Default true. */
  onDemand?: boolean;
  /** Which packages may be built on demand (NIXERY_ALLOWED_PACKAGES/_DENIED_PACKAGES). Default: all. */
  packagePolicy?: CompiledPackagePolicy;
  /** Largest runtime closure built on demand, in bytes of Nix archives (NIXERY_MAX_CLOSURE_SIZE). Default: no limit. */
  maxClosureBytes?: number;
  /** Which repositories hold which pushed manifests, and the referrers index. Default: kept in `storage`. */
  pushedManifests?: PushedManifests;
  /**
   * What a name is built for (NIXERY_PLATFORMS), in order. Several: a client that reads an image
   * index gets one with an image per platform, any other the first platform's image. Default:
   * linux/amd64 alone.
   */
  platforms?: readonly Platform[];
  /** Notes when on-demand images were last pulled, for garbage collection's retention (service/pulls.ts). Default: not noted. */
  pulls?: Pick<PullRecorder, 'recordPulled'>;
  /**
   * How the builder compresses layers (NIXERY_LAYER_COMPRESSION), for the negotiation: with zstd a
   * client that accepts the OCI manifest gets it, one that reads only Docker's types the gzip
   * variant (builder/gzip-variant.ts). Default gzip.
   */
  layerCompression?: LayerCompression;
  /** Where the gzip variants are made (default: one of its own on `storage`). */
  gzipVariants?: GzipVariants;
  /** Default: silent. */
  log?: Logger;
}

/**
 * What a client reads, from its Accept header: an image manifest's format, and the image index's,
 * if it takes one (oci/image.ts's negotiation). A bare format: a client that takes no index.
 */
export interface AcceptedManifests {
  image: ManifestFormat;
  index?: ManifestFormat;
}

/** What a manifest push did: the manifest's digest, and the subject it was listed as a referrer of. */
export interface PushedManifestResult {
  digest: string;
  subject?: string;
}

/** Who asks for a manifest, as far as building it on demand goes. */
export interface Requester {
  /** Aborted when the client went away: a build still queued for nobody else is dropped. */
  signal?: AbortSignal;
  /** The client's address (http/client-address.ts), for the per-client build limit. */
  client?: string;
}

/** What a pushed manifest may hold, as far as this module reads it; every field is the client's. */
interface PushedManifest {
  mediaType?: unknown;
  artifactType?: unknown;
  config?: { digest?: unknown; mediaType?: unknown } | null;
  layers?: unknown;
  manifests?: unknown;
  subject?: unknown;
  annotations?: unknown;
}

export class Manifests {
  private readonly deps: ManifestsDeps;
  private readonly pushed: PushedManifests;
  private readonly indexes: ImageIndexes;
  private readonly variants: GzipVariants;
  /** What the negotiation of an image manifest's format takes into account (oci/image.ts). */
  readonly layerCompression: LayerCompression;

  constructor(deps: ManifestsDeps) {
    this.deps = deps;
    this.pushed = deps.pushedManifests ?? new PushedManifests(deps.storage);
    this.indexes = new ImageIndexes(deps.storage);
    this.variants = deps.gzipVariants ?? new GzipVariants(deps.storage, deps.log ?? silentLogger);
    this.layerCompression = deps.layerCompression ?? 'gzip';
  }

  /**
   * Any stored manifest, built or pushed, by its digest. Throws ManifestUnknownError. With
   * on-demand builds on, the pull is noted (in memory) as one of `name`: whether the digest is a
   * built image's is garbage collection's question (service/pulls.ts).
   */
  async byDigest(digest: string, name?: string): Promise<Manifest> {
    const info = await this.deps.storage.statBlob(digest);
    if (!info || !MANIFEST_TYPES.has(info.contentType)) throw new ManifestUnknownError(`manifest ${digest} is not known`, digest);
    const manifest = { body: await this.deps.storage.readBlob(digest), mediaType: info.contentType, digest };
    if (name !== undefined && this.deps.onDemand !== false) this.deps.pulls?.recordPulled(name, digest);
    return manifest;
  }

  /**
   * What a tag names: a pushed tag (a declared NixImage) wins over reading the name as a package
   * list; otherwise the image is built, or found in the builder's cache, and the tag noted (in
   * memory: service/tags.ts writes it later).
   * Throws ManifestUnknownError for a tag no manifest can have (before any lookup) and when
   * on-demand builds are off, InvalidNameError for a name that is no package list,
   * PackagesRefusedError for packages the policy refuses (meta-packages expanded; the
   * always-included ones are part of every image and not checked), and ImageBuildFailedError
   * when the build fails. A build the builder would not start now is its BuildRejectedError; a
   * requester who left gets its signal's reason.
   * With several platforms and a client that reads an index, every platform's image is built (each
   * a build of its own, through the same queue and limits) and their index served; an `arm64/`
   * name stays Nixery's single arm64 image.
   */
  async byTag(name: string, tag: string, accepted: ManifestFormat | AcceptedManifests, requester: Requester = {}): Promise<Manifest> {
    const { image: format, index } = typeof accepted === 'string' ? { image: accepted, index: undefined } : accepted;
    checkTag(tag);
    // A name that is no repository name was never pushed, and would make no storage key.
    const pushed = isValidRepositoryName(name) ? await this.deps.pushedTags.get(name, tag) : null;
    if (pushed) {
      const body = await this.deps.storage.readBlob(pushed.digest).catch(() => null);
      if (body) return { body, mediaType: pushed.mediaType, digest: pushed.digest };
    }
    if (this.deps.onDemand === false) {
      throw new ManifestUnknownError(`${name}:${tag} is no pushed tag, and on-demand builds are off on this registry: it serves pushed tags only`);
    }
    const image = imageFromName(name, tag);
    const refused = refusedPackages(
      this.deps.packagePolicy ?? ALLOW_EVERYTHING,
      image.packages.filter((p) => !(ALWAYS_INCLUDED as readonly string[]).includes(p)),
    );
    if (refused.length) throw new PackagesRefusedError(refused);
    const options: BuildOptions = {
      ...(requester.signal ? { signal: requester.signal } : {}),
      ...(requester.client !== undefined ? { client: requester.client } : {}),
      ...(this.deps.maxClosureBytes !== undefined ? { maxClosureBytes: this.deps.maxClosureBytes } : {}),
    };
    const platforms = this.deps.platforms ?? DEFAULT_PLATFORMS;
    const prefixed = image.arch.system === ARM64.system;
    let manifest: Manifest;
    try {
      if (!prefixed && platforms.length > 1 && index !== undefined) {
        const built = await buildPlatforms(this.deps.builder, image, platforms, options);
        // Docker's list names Docker manifests: zstd images' gzip variants, made now if need be.
        const images = index === 'docker' ? await Promise.all(built.map((i) => this.variants.withDockerManifest(i))) : built;
        const stored = await this.indexes.store(name, tag, images);
        const descriptor = stored.manifests[index]!;
        // Rendered again, as an image manifest below: the bytes stored, without reading them.
        manifest = { body: renderPlatformIndex(index, images), mediaType: descriptor.mediaType, digest: descriptor.digest };
        // The platforms' images are pulled by digest next; noted now, in case a client has them already.
        for (const platform of images) this.deps.pulls?.recordPulled(name, platform.manifests[index]!.digest);
      } else {
        const result = await this.deps.builder.build(prefixed ? image : { ...image, arch: PLATFORMS[platforms[0]!] }, options);
        // Rendered again rather than read from storage: rendering is pure, the same inputs give the
        // bytes the builder stored (so the digest matches), and it costs no storage round trip.
        if (format === 'docker' && result.compression === 'zstd') {
          const variant = await this.variants.of(result);
          manifest = { body: renderManifest('docker', result.config, variant.layers), mediaType: MediaType.dockerManifest, digest: variant.docker.digest };
        } else {
          manifest = { body: renderManifest(format, result.config, result.layers, result.compression), mediaType: MANIFEST_MEDIA_TYPE[format], digest: result.manifests[format]!.digest };
        }
      }
    } catch (error) {
      if (error instanceof BuildRejectedError || (requester.signal?.aborted && error === requester.signal.reason)) throw error;
      throw new ImageBuildFailedError(`${name}:${tag}`, classifyFailure(error), { cause: error });
    }
    // Noted in memory, written later in a batch: a pull writes nothing (service/tags.ts).
    this.deps.tags.recordPulled(name, tag);
    this.deps.pulls?.recordPulled(name, manifest.digest);
    return manifest;
  }

  /**
   * Stores a pushed manifest (`contentType` is the request's, used when the manifest names no
   * media type), records that `name` holds it and, when it has a `subject`, lists it among that
   * digest's referrers in `name` (the subject need not exist). By tag, the tag then names it; by
   * digest, the digest must be the manifest's.
   */
  async put(name: string, reference: string, body: Buffer, contentType: string): Promise<PushedManifestResult> {
    let manifest: PushedManifest;
    try {
      manifest = JSON.parse(body.toString('utf8')) as PushedManifest;
    } catch {
      throw new ManifestInvalidError('the manifest is not valid JSON');
    }
    if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) throw new ManifestInvalidError('the manifest is not a JSON object');
    const mediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : contentType;
    if (!IMAGE_MANIFESTS.has(mediaType) && !INDEXES.has(mediaType)) {
      throw new ManifestInvalidError(`unsupported manifest media type ${JSON.stringify(mediaType)}`);
    }
    const referenced = IMAGE_MANIFESTS.has(mediaType)
      ? [manifest.config?.digest, ...descriptors(manifest.layers, 'layers').map((l) => l?.digest)]
      : descriptors(manifest.manifests, 'manifests').map((m) => m?.digest);
    if (IMAGE_MANIFESTS.has(mediaType) && typeof manifest.config?.digest !== 'string') {
      throw new ManifestInvalidError('an image manifest needs a config descriptor');
    }
    const missing: string[] = [];
    for (const digest of referenced) {
      if (typeof digest !== 'string' || !isSha256Digest(digest)) throw new ManifestInvalidError(`invalid descriptor digest ${JSON.stringify(digest)}`);
      if (!(await this.deps.storage.statBlob(digest))) missing.push(digest);
    }
    if (missing.length) throw new ManifestBlobsUnknownError(missing);
    const subject = subjectOf(manifest);

    const digest = sha256Digest(body);
    const byDigest = reference.includes(':');
    if (byDigest && reference !== digest) throw new ManifestDigestMismatchError(digest, reference);
    // Before anything is stored: a tag that cannot be is refused with nothing written.
    if (!byDigest) validateTag(reference);
    await this.deps.storage.putBlob(body, { contentType: mediaType, expectedDigest: digest });
    await this.pushed.hold(name, digest);
    if (subject !== undefined) await this.pushed.addReferrer(name, subject, referrerDescriptor(manifest, mediaType, digest, body.length));
    if (!byDigest) {
      await this.deps.pushedTags.set(name, reference, { digest, mediaType, size: body.length });
      await this.deps.tags.recordPushed(name, reference);
    }
    return { digest, ...(subject === undefined ? {} : { subject }) };
  }

  /**
   * Removes a pushed tag and takes it off the tags list; the manifest stays, held by the
   * repository (by digest). On a name that is also a package list, a GET of the tag builds that
   * image again. Throws ManifestUnknownError.
   */
  async deleteTag(name: string, tag: string): Promise<void> {
    checkTag(tag);
    if (!isValidRepositoryName(name) || !(await this.deps.pushedTags.delete(name, tag))) throw new ManifestUnknownError(`no pushed tag ${name}:${tag}`);
    await this.deps.tags.removePushed(name, [tag]);
  }

  /**
   * Deletes a manifest pushed to `name`, as the spec's DELETE by digest: every pushed tag of `name`
   * naming it goes (and off the tags list), it leaves the referrers of its subject, and `name` no
   * longer holds it; its bytes are deleted once no repository holds it, so that a GET by digest is
   * then 404. Blobs it names stay. Images the registry builds are never deleted: their manifests
   * were not pushed to any repository. Throws ManifestUnknownError when `name` holds no such
   * manifest.
   */
  async deleteByDigest(name: string, digest: string): Promise<void> {
    const unknown = () => new ManifestUnknownError(`no manifest ${digest} was pushed to ${name}`, digest);
    if (!isValidRepositoryName(name) || !isSha256Digest(digest)) throw unknown();
    const tagged: string[] = [];
    for (const tag of await this.deps.tags.pushed(name)) {
      if ((await this.deps.pushedTags.get(name, tag))?.digest === digest) tagged.push(tag);
    }
    // Manifests pushed by earlier versions have no holder record, only their tags.
    if (!tagged.length && !(await this.pushed.holds(name, digest))) throw unknown();
    // Tags first: no tag ever names a manifest that is gone.
    for (const tag of tagged) await this.deps.pushedTags.delete(name, tag);
    await this.deps.tags.removePushed(name, tagged);
    const body = await this.deps.storage.readBlob(digest).catch(() => null);
    const subject = body ? storedSubject(body) : undefined;
    if (subject !== undefined) await this.pushed.removeReferrer(name, subject, digest);
    if ((await this.pushed.release(name, digest)) === 0) await this.deps.storage.deleteBlob(digest);
  }

  /**
   * The referrers of `subject` in `name`: for an image the registry built, its SBOM (whatever the
   * name: a built image is any name's by digest), then the manifests pushed to `name` whose
   * `subject` is that digest, in push order; with `artifactType`, only those of that type.
   */
  async referrers(name: string, subject: string, artifactType?: string): Promise<ReferrerDescriptor[]> {
    if (!isValidRepositoryName(name) || !isKeyedDigest(subject)) return [];
    const [built, pushed] = await Promise.all([builtReferrers(this.deps.storage, subject), this.pushed.referrers(name, subject)]);
    // `nixery build --push` to this registry pushes the same SBOM manifest it built: listed once.
    const all = [...built, ...pushed.filter((p) => !built.some((b) => b.digest === p.digest))];
    return artifactType === undefined ? all : all.filter((m) => m.artifactType === artifactType);
  }
}

/** The subject digest of a pushed manifest, if it has one; ManifestInvalidError when it is malformed. */
function subjectOf(manifest: PushedManifest | null): string | undefined {
  if (manifest === null || manifest.subject === undefined) return undefined;
  const subject = manifest.subject as { digest?: unknown } | null;
  const digest = subject !== null && typeof subject === 'object' ? subject.digest : undefined;
  if (typeof digest !== 'string' || !isKeyedDigest(digest)) {
    throw new ManifestInvalidError(`invalid subject descriptor: expected a sha256 or sha512 digest, got ${JSON.stringify(digest)}`);
  }
  return digest;
}

/**
 * A referrer's descriptor as the spec has the referrers API list it: its `artifactType`, or for an
 * image manifest without one its config's media type (an index without one has none), and its
 * annotations.
 */
function referrerDescriptor(manifest: PushedManifest, mediaType: string, digest: string, size: number): ReferrerDescriptor {
  const declared = typeof manifest.artifactType === 'string' && manifest.artifactType !== '' ? manifest.artifactType : undefined;
  const configType = IMAGE_MANIFESTS.has(mediaType) && typeof manifest.config?.mediaType === 'string' ? manifest.config.mediaType : undefined;
  const artifactType = declared ?? configType;
  const annotations = stringRecord(manifest.annotations);
  return { mediaType, digest, size, ...(artifactType === undefined ? {} : { artifactType }), ...(annotations ? { annotations } : {}) };
}

function stringRecord(value: unknown): Record<string, string> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const entries = Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string');
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** The subject of a stored manifest; none when it has none, or none this registry would have taken. */
function storedSubject(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? subjectOf(parsed as PushedManifest) : undefined;
  } catch {
    return undefined;
  }
}

/** A list of descriptors in a pushed manifest, as far as its shape goes; absent is empty. */
function descriptors(value: unknown, field: string): ({ digest?: unknown } | null)[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ManifestInvalidError(`${field} must be an array of descriptors`);
  return value.map((d: unknown) => (d !== null && typeof d === 'object' ? (d as { digest?: unknown }) : null));
}

/**
 * A tag no manifest can have is refused before it reaches storage, where it would be part of a
 * document key: as ManifestUnknownError, since the spec answers a GET, HEAD or DELETE of a manifest
 * that cannot exist with 404 MANIFEST_UNKNOWN.
 */
function checkTag(tag: string): void {
  try {
    validateTag(tag);
  } catch (error) {
    if (error instanceof InvalidTagError) throw new ManifestUnknownError(`manifest unknown: ${error.message}`);
    throw error;
  }
}
