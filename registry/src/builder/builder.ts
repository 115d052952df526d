// Builds an image: Nix realises the closure, the closure is grouped into layers, each layer is
// packed and stored unless the layer cache already has it, then config and manifests are stored.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { PackageSource } from '../config/package-source.ts';
import type { ImageSpec } from '../image/name.ts';
import { foldAttributePath } from '../image/package-policy.ts';
import { groupLayers, type Popularity } from '../layers/index.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import {
  evaluateImage,
  PackagesNotFoundError,
  realiseImage,
  type EvaluatedImage,
  type ImageRequest,
  type NixOptions,
  type RealisedImage,
} from '../nix/index.ts';
import { DEFAULT_ENV, renderConfig, renderManifest, sha256Digest, type ImageConfigOverrides, type LayerBlob } from '../oci/image.ts';
import { MediaType } from '../oci/media-types.ts';
import { compressLayer, customisationTar, PackError, startTarThread, storePathsTar, type LayerCompression, type LayerTar } from '../pack/index.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { BuildQueueFullError, BuildStorageError, ClientRateLimitedError, ClosureTooLargeError } from './errors.ts';
import type { FreeSpace } from './free-space.ts';
import { classifyFailure } from './outcome.ts';
import type { BuildLayer, BuildResult } from './result.ts';
import { sbomSource, storeSbom } from './sbom.ts';
import { renderCycloneDx } from '../sbom/cyclonedx.ts';
import { JobQueue, mapLimited, QueueFullError, SingleFlight, type Job } from '../cache/single-flight.ts';
import { RateLimiter } from '../cache/rate-limiter.ts';
import { SourceFingerprints, type FingerprintLookup } from './fingerprint-cache.ts';
import type { Fingerprint } from './source-fingerprint.ts';
import { BoundedMap, TtlCache } from '../cache/ttl-cache.ts';
import type { HeldLease, Leases } from '../storage/lease.ts';
import { buildTurn, DEFAULT_LEASE_POLL_MS } from './build-lease.ts';
import type { StorageUsage } from '../service/quota.ts';
import type { BuildRootHold, BuildRoots } from '../nix/gc-roots.ts';
import type { StoreGate } from '../nix/store-gate.ts';

/** Bump when anything changes the bytes of layers, configs or manifests, so old cache entries are not reused. */
export const BUILDER_VERSION = 2;

/**
 * How long a verified manifest cache entry (document read, every blob it names stat'ed) is reused
 * without reading storage again. Garbage collection (service/gc.ts) keeps what a manifest cache
 * entry names, but storage may be pruned from outside too (by hand, a bucket lifecycle rule):
 * after this long a pruned entry is noticed and the image rebuilt, as before.
 */
export const MANIFEST_MEMO_TTL_MS = 5_000;
/** Entries hold the layers' store paths (tens of KB for a big image): cap the memo's memory. */
const MANIFEST_MEMO_ENTRIES = 256;
/**
 * Package lists resolved by Nix (or found missing), remembered by source fingerprint, system and
 * names as requested: a fingerprint names one state of the source, so an entry never goes stale.
 */
const RESOLUTION_ENTRIES = 4096;
/** What a client refused for a full queue is told to wait (Retry-After): roughly one build. */
export const QUEUE_FULL_RETRY_AFTER_SECONDS = 10;

export type Realise = (request: ImageRequest, options: NixOptions) => Promise<RealisedImage>;
export type Evaluate = (request: ImageRequest, options: NixOptions) => Promise<EvaluatedImage>;

/** What Nix made of a package list: its derivations, or the names that address none. */
type Resolution = { evaluated: EvaluatedImage } | { notFound: PackagesNotFoundError };

export interface BuilderOptions {
  storage: StorageBackend;
  source: PackageSource;
  nixTimeoutSeconds: number;
  /** Most layers an image may have, the customisation layer included. */
  layerBudget: number;
  maxConcurrentBuilds: number;
  /** Builds waiting for a slot, at most (NIXERY_MAX_QUEUED_BUILDS); beyond, BuildQueueFullError. Default: unbounded. */
  maxQueuedBuilds?: number;
  /** New builds each client (BuildOptions.client) may start a minute (NIXERY_CLIENT_BUILDS_PER_MINUTE). Default: no limit. */
  clientBuildsPerMinute?: number;
  popularity: Popularity;
  log: Logger;
  metrics: Metrics;
  /**
   * How layers are compressed (NIXERY_LAYER_COMPRESSION); default gzip. A zstd image has only its
   * OCI manifest; its Docker schema 2 gzip variant is made on demand (gzip-variant.ts).
   */
  layerCompression?: LayerCompression;
  /** Layers packed at once within one build (gzip runs on libuv's thread pool). */
  packConcurrency?: number;
  /** Where /nix/store is read from when packing; tests point this at a fake store. */
  storeRoot?: string;
  realise?: Realise;
  evaluate?: Evaluate;
  nixDir?: string;
  /** Extra `--option NAME VALUE` pairs for every Nix call. */
  nixOptions?: Record<string, string>;
  /** Aborting stops every Nix call of this builder (its whole process group) and fails the build with the reason. */
  signal?: AbortSignal;
  /** Asked before each build starts (after a manifest cache miss); InsufficientSpaceError refuses it (free-space.ts). */
  freeSpace?: Pick<FreeSpace, 'check'>;
  /** NIXERY_STORAGE_QUOTA: asked once the closure size is known, before packing; StorageQuotaExceededError refuses the build (service/quota.ts). */
  quota?: Pick<StorageUsage, 'checkFits'>;
  /**
   * When the server collects its Nix store (nix/store-gc.ts): each build roots its derivations and
   * outputs from its evaluation until it is stored, evaluating and rooting under the gate's shared side.
   */
  nixStore?: { gate: StoreGate; roots: Pick<BuildRoots, 'hold'> };
  /** Tests: the source lookup behind the fingerprint cache, and the clock of both caches. */
  fingerprintLookup?: FingerprintLookup;
  now?: () => number;
  /** Replicas sharing the storage: one build per image across them (build-lease.ts). Absent: this process alone decides. */
  leases?: Leases;
  /** How often a replica waiting for another's build looks for its result (default DEFAULT_LEASE_POLL_MS). */
  leasePollMs?: number;
}

export interface BuildOptions {
  /** A declared image's config (entrypoint, env, ...), written into the image config. */
  config?: ImageConfigOverrides;
  /**
   * The caller's interest: aborting it (the client went away) rejects this call with its reason,
   * and a build still queued that no caller waits for any more is dropped unstarted. A build
   * already running is finished: its layers and manifests are cached for the next request.
   */
  signal?: AbortSignal;
  /** Who asks (a client address): each may start `clientBuildsPerMinute` new builds a minute. */
  client?: string;
  /** Largest runtime closure (sum of NAR sizes) built; a larger one fails with ClosureTooLargeError before packing. */
  maxClosureBytes?: number;
}

/** Evaluated packages in the order and form that decide the image, and the key of that image. */
interface CanonicalImage {
  key: string;
  evaluated: EvaluatedImage;
}

interface CachedLayer {
  digest: string;
  diffId: string;
  size: number;
}

export class ImageBuilder {
  private readonly options: BuilderOptions;
  /** Builds by the names requested (one flight per image name): bounded, queued, dropped when abandoned. */
  private readonly jobs: JobQueue<BuildResult>;
  /** Builds by what the names resolved to: case variants of one image share one. */
  private readonly canonicalFlights = new SingleFlight<BuildResult>();
  private readonly rateLimiter: RateLimiter | undefined;
  private resolutions = new BoundedMap<string, Resolution>(RESOLUTION_ENTRIES);
  /** Evaluations asked for by resolves(), one at a time per name list. */
  private readonly evaluations = new SingleFlight<EvaluatedImage>();
  private readonly realise: Realise;
  private readonly evaluate: Evaluate;
  private readonly fingerprints: SourceFingerprints;
  /** Verified manifest cache entries by cache key; misses are not remembered. */
  private readonly manifests: TtlCache<BuildResult | null>;

  constructor(options: BuilderOptions) {
    if (options.layerBudget < 2) throw new RangeError('layerBudget must leave room for the customisation layer');
    this.options = options;
    const { metrics, log } = options;
    this.jobs = new JobQueue({
      concurrency: options.maxConcurrentBuilds,
      maxQueued: options.maxQueuedBuilds ?? Number.MAX_SAFE_INTEGER,
      onQueueLength: (length) => metrics.buildQueueLength.set(length),
      onAbandoned: (key) => {
        metrics.buildsRejected.inc({ reason: 'abandoned' });
        log.info('queued build dropped: every client waiting for it went away', { build: key });
      },
    });
    this.rateLimiter = options.clientBuildsPerMinute === undefined ? undefined : new RateLimiter({ perMinute: options.clientBuildsPerMinute, ...(options.now ? { now: options.now } : {}) });
    this.realise = options.realise ?? realiseImage;
    this.evaluate = options.evaluate ?? evaluateImage;
    this.fingerprints = new SourceFingerprints(options.source, {
      timeoutSeconds: options.nixTimeoutSeconds,
      log: options.log,
      ...(options.fingerprintLookup ? { lookup: options.fingerprintLookup } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    this.manifests = new TtlCache({
      ttlMs: MANIFEST_MEMO_TTL_MS,
      maxEntries: MANIFEST_MEMO_ENTRIES,
      keep: (result) => result !== null,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /**
   * Returns the image, from the manifest cache when the source has not changed since it was
   * built, else by building it. A build is a job of the builder's queue, one per image name:
   * concurrent calls for the same name share it, and names Nix resolves to the same derivations
   * (`hello`, `Hello`) share one build after one evaluation each. Throws BuildQueueFullError or
   * ClientRateLimitedError (nothing ran), and rejects with `options.signal`'s reason once it aborts.
   */
  async build(image: ImageSpec, options: BuildOptions = {}): Promise<BuildResult> {
    // Outside the job: requests served the previous fingerprint while one request waits for a
    // refresh must not queue behind that request's job.
    const fingerprint = await this.fingerprints.get(image.tag).catch((error: unknown) => {
      this.options.metrics.builds.inc({ result: classifyFailure(error).outcome });
      throw error;
    });
    const cacheKey = fingerprint.key === undefined ? undefined : manifestCacheKey(fingerprint.key, image, options.config, this.compression);
    const cached = await this.cachedImage(image, cacheKey);
    if (cached) {
      this.options.metrics.manifestCache.inc({ result: 'hit' });
      return cached;
    }
    this.options.metrics.manifestCache.inc({ result: 'miss' });
    // Names Nix already found missing cost no job.
    const known = this.knownResolution(image, fingerprint);
    if (known && 'notFound' in known) throw new PackagesNotFoundError(known.notFound.packages, known.notFound.failedToEvaluate);
    try {
      return await this.jobs.run(this.flightKey(image, fingerprint, options), (job) => this.coldBuild(job, image, fingerprint, cacheKey, options), {
        ...(options.signal ? { signal: options.signal } : {}),
        admit: () => this.admit(options.client),
      });
    } catch (error) {
      if (error instanceof QueueFullError) {
        this.options.metrics.buildsRejected.inc({ reason: 'queue_full' });
        throw new BuildQueueFullError(error.maxQueued, QUEUE_FULL_RETRY_AFTER_SECONDS);
      }
      throw error;
    }
  }

  /** The image from the manifest cache (memo, then storage), named as requested. */
  private async cachedImage(image: ImageSpec, cacheKey: string | undefined): Promise<BuildResult | null> {
    if (cacheKey === undefined) return null;
    const cached = await this.manifests.get(cacheKey, () => this.cachedManifest(cacheKey));
    return cached && { ...cached, name: image.name, tag: image.tag, fromCache: true };
  }

  /** A new job costs its client one build of its allowance; refused, nothing is queued. */
  private admit(client: string | undefined): void {
    if (client === undefined || !this.rateLimiter) return;
    const decision = this.rateLimiter.take(client);
    if (decision.allowed) return;
    this.options.metrics.buildsRejected.inc({ reason: 'rate_limited' });
    throw new ClientRateLimitedError(client, this.rateLimiter.perMinute, decision.retryAfterSeconds);
  }

  /**
   * One job, holding a build slot: resolve the names (one evaluation, remembered), then build
   * what they resolved to — or, when another name of the same image is being built, hand the
   * slot back and wait for that build. The result is cached under this name too.
   */
  private async coldBuild(job: Job, image: ImageSpec, fingerprint: Fingerprint, cacheKey: string | undefined, options: BuildOptions): Promise<BuildResult> {
    // While this job was queued, a job of the same name may have finished.
    const cached = await this.cachedImage(image, cacheKey);
    if (cached) return cached;
    // Across replicas: one builds, the others wait for its manifest cache entry.
    let lease: HeldLease | undefined;
    if (cacheKey !== undefined && this.options.leases) {
      const turn = await this.buildTurn(image, cacheKey, job.abandoned).catch((cause: unknown) => {
        // Every client left while this replica waited for another's build: nothing to build for.
        if (job.abandoned.aborted) throw job.abandoned.reason;
        throw new BuildStorageError(`taking the build lease failed: ${(cause as Error).message}`, { cause });
      });
      if ('result' in turn) return turn.result;
      lease = turn.lease;
    }
    const { log, metrics } = this.options;
    const started = performance.now();
    metrics.buildsInFlight.inc();
    const buildLog = log.child({ image: image.name, tag: image.tag });
    let roots: BuildRootHold | undefined;
    try {
      await this.options.freeSpace?.check();
      const canonical = canonicalImage(
        await this.rootedResolve(image, fingerprint, (hold) => (roots = hold)),
        image.arch.system,
        options.config,
        this.compression,
      );
      let built: BuildResult;
      if (this.canonicalFlights.has(canonical.key)) {
        job.release();
        built = await this.canonicalFlights.run(canonical.key, () => Promise.reject(new Error('joined a flight that had ended')));
      } else {
        built = await this.canonicalFlights.run(canonical.key, () => this.buildCanonical(image, fingerprint, canonical, options, started));
      }
      const result: BuildResult = { ...built, name: image.name, tag: image.tag, packages: image.packages };
      if (cacheKey !== undefined) {
        await this.storageStep('writing the manifest cache entry', () => this.options.storage.putDocument(cacheKey, result));
        this.manifests.set(cacheKey, result);
      }
      const seconds = (performance.now() - started) / 1000;
      metrics.builds.inc({ result: 'success' });
      metrics.buildDuration.observe({ result: 'success' }, seconds);
      buildLog.info(built.fromCache ? 'image resolved to one built before' : 'image built', { result });
      return result;
    } catch (error) {
      const { outcome } = classifyFailure(error);
      metrics.builds.inc({ result: outcome });
      metrics.buildDuration.observe({ result: outcome }, (performance.now() - started) / 1000);
      buildLog.warn('image build failed', { outcome, error });
      throw error;
    } finally {
      metrics.buildsInFlight.dec();
      await roots?.release();
      await lease?.release();
    }
  }

  /** The build lease of a manifest cache key: held (build), or another replica's result. */
  private buildTurn(image: ImageSpec, cacheKey: string, abandoned: AbortSignal) {
    const { leases, metrics, log } = this.options;
    return buildTurn({
      leases: leases!,
      name: `build/${cacheKey.slice('manifests/'.length)}`,
      cached: () => this.cachedImage(image, cacheKey),
      pollMs: this.options.leasePollMs ?? DEFAULT_LEASE_POLL_MS,
      // Longer than any build of the holder's should take; past it, building here too is the lesser evil.
      maxWaitMs: 2 * this.options.nixTimeoutSeconds * 1000 + leases!.durationMs,
      log: log.child({ image: image.name, tag: image.tag }),
      onWait: (result) => metrics.leaseWaits.inc({ result }),
      signal: abandoned,
    });
  }


  /**
   * resolve(), and with a Nix store collector, the derivations and outputs rooted before a
   * collection may run (the gate's shared side: no collection between the evaluation and the roots).
   */
  private async rootedResolve(image: ImageSpec, fingerprint: Fingerprint, held: (hold: BuildRootHold) => void): Promise<EvaluatedImage> {
    const { nixStore } = this.options;
    if (!nixStore) return this.resolve(image, fingerprint);
    return nixStore.gate.shared(async () => {
      const evaluated = await this.resolve(image, fingerprint);
      held(await nixStore.roots.hold(evaluated.packages.flatMap((p) => [p.drvPath, ...Object.values(p.outputs)])));
      return evaluated;
    });
  }

  /** A Nix store collection may delete the derivations of remembered evaluations: evaluate again. */
  forgetResolutions(): void {
    this.resolutions = new BoundedMap(RESOLUTION_ENTRIES);
  }

  /** The image a resolved package list makes: from the manifest cache by what it resolved to, else built and cached. */
  private async buildCanonical(image: ImageSpec, fingerprint: Fingerprint, canonical: CanonicalImage, options: BuildOptions, started: number): Promise<BuildResult> {
    const cacheKey = `manifests/${createHash('sha256').update(canonical.key).digest('hex')}`;
    const cached = await this.manifests.get(cacheKey, () => this.cachedManifest(cacheKey));
    if (cached) return { ...cached, fromCache: true };
    const result = await this.buildUncached(image, fingerprint, canonical.evaluated, options, started);
    await this.storageStep('writing the manifest cache entry', () => this.options.storage.putDocument(cacheKey, result));
    this.manifests.set(cacheKey, result);
    return result;
  }

  private resolutionKey(image: ImageSpec, fingerprint: Fingerprint): string | undefined {
    return fingerprint.key === undefined ? undefined : JSON.stringify([fingerprint.key, image.arch.system, image.packages]);
  }

  private knownResolution(image: ImageSpec, fingerprint: Fingerprint): Resolution | undefined {
    const key = this.resolutionKey(image, fingerprint);
    return key === undefined ? undefined : this.resolutions.get(key);
  }

  /**
   * Whether the image's names resolve to packages of the source as it is now (every name found):
   * the remembered evaluation, else one Nix evaluation — concurrent asks share it — that is
   * remembered for builds too. Nothing is built. Throws when Nix fails for another reason.
   */
  async resolves(image: ImageSpec): Promise<boolean> {
    const fingerprint = await this.fingerprints.get(image.tag);
    const key = this.resolutionKey(image, fingerprint) ?? JSON.stringify([null, image.arch.system, image.packages]);
    try {
      await this.evaluations.run(key, () => (this.options.nixStore ? this.options.nixStore.gate.shared(() => this.resolve(image, fingerprint)) : this.resolve(image, fingerprint)));
      return true;
    } catch (error) {
      if (error instanceof PackagesNotFoundError) return false;
      throw error;
    }
  }

  /** What the names resolve to: remembered, or one Nix evaluation (whose missing names are remembered too). */
  private async resolve(image: ImageSpec, fingerprint: Fingerprint): Promise<EvaluatedImage> {
    const known = this.knownResolution(image, fingerprint);
    if (known) {
      if ('notFound' in known) throw new PackagesNotFoundError(known.notFound.packages, known.notFound.failedToEvaluate);
      return known.evaluated;
    }
    const key = this.resolutionKey(image, fingerprint);
    try {
      const evaluated = await this.evaluate(this.nixRequest(image, fingerprint), this.nixCallOptions());
      if (key !== undefined) this.resolutions.set(key, { evaluated });
      return evaluated;
    } catch (error) {
      if (key !== undefined && error instanceof PackagesNotFoundError) this.resolutions.set(key, { notFound: error });
      throw error;
    }
  }

  private nixRequest(image: ImageSpec, fingerprint: Fingerprint): ImageRequest {
    return {
      source: this.options.source,
      ...(this.options.source.type === 'git' ? { ref: image.tag } : {}),
      // Nix evaluates the very commit that was fingerprinted, even if the branch moves meanwhile.
      ...(fingerprint.gitSpec ? { gitSpec: fingerprint.gitSpec } : {}),
      packages: image.packages,
      system: image.arch.system,
    };
  }

  private nixCallOptions(): NixOptions {
    return {
      timeoutSeconds: this.options.nixTimeoutSeconds,
      log: this.options.log,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
      ...(this.options.nixDir ? { nixDir: this.options.nixDir } : {}),
      nixOptions: {
        ...this.options.nixOptions,
        // A channel name moves: make Nix revalidate the tarball instead of trusting its hour-long cache.
        ...(this.options.source.type === 'channel' ? { 'tarball-ttl': '0' } : {}),
      },
    };
  }

  /** A cache entry counts only while the blobs it names are still stored (storage may be pruned). */
  private async cachedManifest(key: string): Promise<BuildResult | null> {
    const { storage } = this.options;
    const cached = await this.storageStep('reading the manifest cache', () => storage.getDocument<BuildResult>(key));
    // An entry from before SBOMs has none: the image is built again (Nix and the layer cache make
    // that cheap, and the bytes are the same), this time with its SBOM.
    if (!cached || cached.builderVersion !== BUILDER_VERSION || !cached.sbom || (cached.compression ?? 'gzip') !== this.compression) return null;
    const { manifests, sbom } = cached;
    const digests = [manifests.docker, manifests.oci, cached.config, ...cached.layers, sbom.referrers.docker, sbom.referrers.oci].filter((d) => d !== undefined).map((d) => d.digest);
    const present = await Promise.all(digests.map((d) => storage.statBlob(d)));
    return present.every(Boolean) ? cached : null;
  }

  private flightKey(image: ImageSpec, fingerprint: Fingerprint, options: BuildOptions): string {
    // Only the git source reads the tag; for the others every tag names the same image.
    const ref = this.options.source.type === 'git' ? image.tag : '';
    return JSON.stringify([image.packages, image.arch.system, ref, fingerprint.key ?? null, options.config ?? null, this.compression]);
  }

  private async buildUncached(image: ImageSpec, fingerprint: Fingerprint, evaluated: EvaluatedImage, options: BuildOptions, started: number): Promise<BuildResult> {
    // The tar thread starts while Nix works, not when the first layer is due.
    startTarThread();
    const realised = await this.realise({ ...this.nixRequest(image, fingerprint), evaluated }, this.nixCallOptions());
    // Nix's archive sizes are known now, before anything is packed or stored.
    const closureBytes = realised.closure.reduce((sum, p) => sum + p.narSize, 0);
    if (options.maxClosureBytes !== undefined && closureBytes > options.maxClosureBytes) {
      this.options.metrics.buildsRejected.inc({ reason: 'closure_too_large' });
      throw new ClosureTooLargeError(closureBytes, options.maxClosureBytes);
    }
    try {
      this.options.quota?.checkFits(closureBytes);
    } catch (error) {
      this.options.metrics.buildsRejected.inc({ reason: 'over_quota' });
      throw error;
    }

    const layeringStart = performance.now();
    const contents = realised.packages.flatMap((p) => p.outPaths);
    const groups = groupLayers(realised.closure, {
      budget: this.options.layerBudget - 1,
      roots: contents,
      popularity: this.options.popularity,
    });
    const layeringMs = performance.now() - layeringStart;

    const packingStart = performance.now();
    const closurePaths = realised.closure.map((p) => p.path);
    const packed = await mapLimited(
      [...groups.map((g) => ({ kind: 'store-paths' as const, paths: g.paths })), { kind: 'customisation' as const, paths: [] }],
      this.options.packConcurrency ?? 2,
      (layer) => (layer.kind === 'store-paths' ? this.storePathLayer(layer.paths) : this.customisationLayer(contents, closurePaths)),
    );

    const blobs: LayerBlob[] = packed.map(({ digest, diffId, size }) => ({ digest, diffId, size }));
    const configBytes = renderConfig({
      architecture: image.arch.imageArch,
      layers: blobs,
      ...(this.hasBash(contents) ? { cmd: ['bash'] } : {}),
      env: DEFAULT_ENV,
      ...(options.config ? { overrides: options.config } : {}),
    });
    const config = await this.put(configBytes, MediaType.dockerConfig);
    const compression = this.compression;
    // Docker schema 2 has no zstd layers: a zstd image's Docker manifest is its gzip variant's, made on demand.
    const docker = compression === 'gzip' ? await this.put(renderManifest('docker', config, blobs), MediaType.dockerManifest) : undefined;
    const oci = await this.put(renderManifest('oci', config, blobs, compression), MediaType.ociManifest);
    const main = docker ?? oci;
    const packingMs = performance.now() - packingStart;

    // After the manifests, as a referrer of each: a few small writes.
    const sbomStart = performance.now();
    const document = renderCycloneDx({
      system: image.arch.system,
      source: sbomSource(this.options.source, fingerprint),
      packages: evaluated.packages,
      closure: realised.closure,
      layers: packed,
    });
    const sbom = await this.storageStep('storing the SBOM', () => storeSbom(this.options.storage, document, { oci, ...(docker ? { docker } : {}) }));
    const sbomMs = performance.now() - sbomStart;

    return {
      name: image.name,
      tag: image.tag,
      packages: image.packages,
      system: image.arch.system,
      digest: main.digest,
      mediaType: main.mediaType,
      size: main.size,
      ...(compression === 'gzip' ? {} : { compression }),
      manifests: { oci, ...(docker ? { docker } : {}) },
      config: { ...config, mediaType: MediaType.dockerConfig },
      layers: packed,
      sbomDigest: (sbom.referrers.docker ?? sbom.referrers.oci).digest,
      sbom,
      timings: {
        ...realised.timings,
        layeringMs: round(layeringMs),
        packingMs: round(packingMs),
        sbomMs: round(sbomMs),
        totalMs: round(performance.now() - started),
      },
      builderVersion: BUILDER_VERSION,
    };
  }

  private storePathLayer(paths: string[]): Promise<BuildLayer> {
    // The tar does not depend on the order of paths, so neither may the cache key.
    const sorted = [...paths].sort();
    return this.cachedLayer('store-paths', { paths: sorted }, sorted, () => storePathsTar(sorted, this.packOptions()));
  }

  private customisationLayer(contents: string[], closure: string[]): Promise<BuildLayer> {
    // Contents keep their order (the first package wins a conflict); the closure is only searched.
    const identity = { contents, closure: [...closure].sort() };
    return this.cachedLayer('customisation', identity, [], () => customisationTar(identity, this.packOptions()));
  }

  /** The layer cache: keyed by what goes into the layer, so the same store paths are packed once. */
  private async cachedLayer(
    kind: BuildLayer['kind'],
    identity: unknown,
    storePaths: string[],
    tar: () => LayerTar,
  ): Promise<BuildLayer> {
    const { storage, metrics } = this.options;
    const key = layerCacheKey(kind, identity, this.compression);
    const cached = await this.storageStep(`reading layer cache entry ${key}`, () => storage.getDocument<CachedLayer>(key));
    if (cached && (await this.storageStep(`checking layer ${cached.digest}`, () => storage.statBlob(cached.digest)))) {
      metrics.layerCache.inc({ result: 'hit' });
      return { ...cached, storePaths, kind, cached: true };
    }
    metrics.layerCache.inc({ result: 'miss' });
    const compressed = compressLayer(tar(), { compression: this.compression });
    const contentType = this.compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.dockerLayer;
    const stored = await storage.putBlob(compressed.stream, { contentType }).catch((cause: unknown) => {
      // A packing error reaches us as the stream's error; keep its type so a store read failure is not blamed on storage.
      if (cause instanceof PackError) throw cause;
      throw new BuildStorageError(`storing a layer failed: ${(cause as Error).message}`, { cause });
    });
    const diffId = await compressed.diffId;
    const entry: CachedLayer = { digest: stored.digest, diffId, size: stored.size };
    await this.storageStep(`writing layer cache entry ${key}`, () => storage.putDocument(key, entry));
    return { ...entry, storePaths, kind, cached: false };
  }

  private async put(bytes: Buffer, contentType: string): Promise<{ mediaType: string; digest: string; size: number }> {
    const { digest, size } = await this.storageStep(`storing ${contentType}`, () =>
      this.options.storage.putBlob(bytes, { contentType, expectedDigest: sha256Digest(bytes) }),
    );
    return { mediaType: contentType, digest, size };
  }

  private async storageStep<T>(what: string, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (cause) {
      throw new BuildStorageError(`${what} failed: ${(cause as Error).message}`, { cause });
    }
  }

  private get compression(): LayerCompression {
    return this.options.layerCompression ?? 'gzip';
  }

  private packOptions(): { root?: string } {
    return this.options.storeRoot ? { root: this.options.storeRoot } : {};
  }

  private hasBash(contents: string[]): boolean {
    const root = this.options.storeRoot ?? '/';
    return contents.some((p) => fs.existsSync(path.join(root, p, 'bin', 'bash')));
  }
}

/**
 * The packages as they decide the image: ordered by attribute path as the lookup folds it (so
 * `Hello` and `hello` sort alike, and lower-case names keep the order they had as requested),
 * the same derivation and outputs once; keyed by exactly what makes the image's bytes.
 */
function canonicalImage(evaluated: EvaluatedImage, system: string, config: ImageConfigOverrides | undefined, compression: LayerCompression): CanonicalImage {
  const order = (p: EvaluatedImage['packages'][number]) => [foldAttributePath(p.attrPath.join('.')), p.attrPath.join('.'), p.drvPath];
  const sorted = [...evaluated.packages].sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
    return 0;
  });
  const seen = new Set<string>();
  const packages = sorted.filter((p) => {
    const id = JSON.stringify([p.drvPath, Object.keys(p.outputs)]);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  const key = JSON.stringify({ v: BUILDER_VERSION, system, config: config ?? null, packages: packages.map((p) => [p.drvPath, p.outputs]), ...compressionIdentity(compression) });
  return { key, evaluated: { packages, evaluateMs: evaluated.evaluateMs } };
}

/** Manifest cache entries are keyed by what determines the image's bytes, the layers' compression included. */
export function manifestCacheKey(fingerprint: string, image: ImageSpec, config?: ImageConfigOverrides, compression: LayerCompression = 'gzip'): string {
  const identity = JSON.stringify({ v: BUILDER_VERSION, fingerprint, packages: image.packages, system: image.arch.system, config: config ?? null, ...compressionIdentity(compression) });
  return `manifests/${createHash('sha256').update(identity).digest('hex')}`;
}

/** Layer cache entries are keyed by what goes into the layer and how it is compressed (different bytes). */
export function layerCacheKey(kind: BuildLayer['kind'], identity: unknown, compression: LayerCompression = 'gzip'): string {
  return `layers/${createHash('sha256').update(JSON.stringify({ v: BUILDER_VERSION, kind, identity, ...compressionIdentity(compression) })).digest('hex')}`;
}

/**
 * The compression's part of a cache key: nothing for gzip, so the keys of gzip images and layers
 * stay those of the versions before zstd (their entries still count after an upgrade).
 */
function compressionIdentity(compression: LayerCompression): { compression?: LayerCompression } {
  return compression === 'gzip' ? {} : { compression };
}

function round(ms: number): number {
  return Math.round(ms);
}
