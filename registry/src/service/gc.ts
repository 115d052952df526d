// Online garbage collection (issue #21): mark and sweep of storage while the registry serves,
// with a grace delay.
//
// Mark. Roots: every pushed tag (`pushed/<name>/_tags/<tag>`), every pushed manifest a repository
// holds (`pushed-manifests/<hex>`: pushed by digest, kept until a DELETE by digest), and every
// manifest cache entry of on-demand builds (`manifests/<hex>`), and every multi-platform index built
// on demand (`built-indexes/<hex>`, which a client may pull by digest long after). A kept manifest keeps what it
// names (config, layers, an index's child manifests, recursively) and its referrers (OCI 1.1: the
// pushed ones listed in `pushed/<name>/_referrers/<subject>`, the SBOMs of built images in
// `built-referrers/<subject>`), which keep theirs. A layer cache entry (`layers/<hex>`) keeps its
// blob only while the entry itself is kept (below). A document of a kind this code does not know,
// or of a known kind in an unexpected shape, is a root for every digest it mentions. A document
// (or a kept manifest) that cannot be read or parsed at all stops the run before anything is
// deleted or recorded (result `incomplete`, logged): what it references is unknown.
//
// Sweep, and the races it must not lose:
// - A blob being written is in staging (backend.ts), never under its digest, so it is not listed.
// - A blob whose content was written less than the grace delay ago is never swept (nor a
//   candidate): a push uploads blobs before the manifest naming them, a build stores layers before
//   its manifest cache entry. The filesystem backend refreshes a blob's time when it is written
//   again; GCS keeps its first write's (see below).
// - A build may read a layer cache entry and reuse its blob minutes later, so an unreferenced blob
//   is swept only when GC runs spanning at least the grace delay saw it unreferenced: the first run
//   records "first seen unreferenced at" in the state document `gc/state` (bounded: at most
//   MAX_CANDIDATES), a later run at least the grace delay after that deletes it. A blob referenced
//   again in between drops out of the record. The grace delay must exceed the longest build
//   (config.ts refuses one not above 3 × NIX_TIMEOUT).
// - A layer cache entry whose blob no kept manifest references is deleted under the same two-run
//   rule (its own record); until then its blob is kept, and the blob is first recorded by the run
//   that deleted the entry, so it goes at least a grace delay after the entry.
// - A `built-referrers/` index whose subject is no longer stored is deleted under the same rule.
// - Retention (phase 2): a manifest cache entry or built index whose image was last used (its
//   `pulled/` record, service/pulls.ts, else its document's time) longer than the retention ago, or
//   that is beyond the most recently used per name and platform, is no root: it is deleted under
//   the same two-run rule (a pull between the runs refreshes the record and keeps it), with its
//   pull records, and its blobs are first recorded by the run that deleted it. Pushed tags and
//   held manifests never expire. A later pull is a cache miss and builds the image again.
// What is left: a blob unreferenced for longer than the grace delay that a client re-references
// without uploading it again (a HEAD, then a manifest PUT) in the moments of the sweep loses it;
// the manifest PUT checks its blobs, so the race is narrow, and a re-push heals it.
//
// One collector at a time per storage: a run holds the GC lease (gc-lease.ts); replicas sharing a
// bucket or volume skip their turn while another holds it, and a run whose lease is lost stops
// deleting (collect's signal), so state records never overwrite each other's.
import { mapLimited } from '../cache/single-flight.ts';
import type { Logger } from '../log/logger.ts';
import { isHeld, type HeldLease, type Leases } from '../storage/lease.ts';
import { GC_LEASE } from './gc-lease.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { MediaType } from '../oci/media-types.ts';
import type { StorageBackend, StoredObject } from '../storage/backend.ts';
import { PeriodicRun } from './periodic.ts';
import { GC_LAST_RUN_KEY, readStorageStatusDocument, recordGcRun } from './storage-status.ts';
import { chooseEvictions, type QuotaMeasure, type StorageUsage } from './quota.ts';

export const GC_STATE_KEY = 'gc/state';
/** Most "first seen unreferenced" records the state document holds (about 100 bytes each). */
export const MAX_CANDIDATES = 100_000;
/** Most objects one run deletes: a huge backlog is worked off over several runs. */
export const MAX_DELETIONS = 10_000;
/** Documents and manifests read at once while marking. */
const READ_CONCURRENCY = 16;
/** Unreadable documents named in a report, at most. */
const MAX_NAMED_UNREADABLE = 20;

export type GcKind = 'blob' | 'layer_cache_entry' | 'document';
const KINDS: readonly GcKind[] = ['blob', 'layer_cache_entry', 'document'];
/** Why an on-demand image expired: not pulled within the retention, or beyond the most recent per name. */
export type ExpiryReason = 'retention' | 'per_name';
export const EXPIRY_REASONS: readonly ExpiryReason[] = ['retention', 'per_name'];

const MANIFEST_TYPES = new Set<string>([MediaType.dockerManifest, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.ociIndex]);
const DIGEST = /sha256:[a-f0-9]{64}/g;
/** The media type the walk gives a digest it must keep but never read (configs, layers). */
const LEAF = 'application/octet-stream';
const KEYED_DIGEST = /^(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})$/;

export interface GcState {
  version: 1;
  /** Object (a blob's digest or a document's key) → when a run first saw it unreferenced (ms). */
  candidates: Record<string, number>;
}

export interface GcCounts {
  objects: number;
  bytes: number;
}

export interface GcReport {
  dryRun: boolean;
  /** `incomplete`: something could not be read; nothing was deleted and the state was not written. */
  result: 'ok' | 'incomplete';
  /** Deleted (dry run: what this run would delete), by kind. */
  deleted: Record<GcKind, GcCounts>;
  /**
   * On-demand images (distinct manifests) whose manifest cache entries or built-index documents
   * this run deleted (dry run: would delete) as expired, by reason; counted in `deleted.document` too.
   */
  expired: Record<ExpiryReason, number>;
  /** Unreferenced, but within the grace delay (young, or not yet seen unreferenced for long enough). */
  withinGrace: Record<GcKind, GcCounts>;
  /** What stays stored. */
  kept: { blobs: GcCounts; documents: GcCounts };
  /** What could not be read (documents by key, manifests by digest), at most 20 named. */
  unreadable: string[];
  /** With a storage quota (service/quota.ts): on-demand images evicted (dry run: would be), and what the run measured. */
  quota?: { quotaBytes: number; evictedImages: number; evictedBytes: number; measure: QuotaMeasure };
  graceSeconds: number;
  durationSeconds: number;
}

export interface GarbageCollectorOptions {
  storage: StorageBackend;
  /** Grace delay; config.ts keeps it above the longest build. Tests may pass 0. */
  graceMs: number;
  /** An on-demand image not pulled for this long expires (NIXERY_RETAIN_PULLED_WITHIN); 0 or absent: never. */
  retentionMs?: number;
  /** On-demand images kept per name and platform, the most recently pulled (NIXERY_GC_MAX_IMAGES_PER_NAME); 0 or absent: all. */
  maxImagesPerName?: number;
  /** NIXERY_STORAGE_QUOTA: above it, on-demand images are evicted least recently used first (service/quota.ts). */
  quotaBytes?: number;
  log: Logger;
  now?: () => number;
  maxCandidates?: number;
  maxDeletions?: number;
}

interface Descriptorish {
  digest: string;
  mediaType?: string;
}

function emptyCounts(): Record<GcKind, GcCounts> {
  return { blob: { objects: 0, bytes: 0 }, layer_cache_entry: { objects: 0, bytes: 0 }, document: { objects: 0, bytes: 0 } };
}

/** One mark-and-sweep pass over the storage; see the header. */
export class GarbageCollector {
  private readonly options: GarbageCollectorOptions;
  private readonly now: () => number;

  constructor(options: GarbageCollectorOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** `signal`: the GC lease (gc-lease.ts); once it aborts (the lease lost to another replica), no further deletion. */
  async collect(options: { dryRun?: boolean; signal?: AbortSignal } = {}): Promise<GcReport> {
    const dryRun = options.dryRun ?? false;
    const { storage, graceMs, log } = this.options;
    const started = process.hrtime.bigint();
    const unreadable: string[] = [];
    const unread = (what: string, error: unknown) => {
      if (unreadable.length < MAX_NAMED_UNREADABLE) unreadable.push(what);
      log.warn('garbage collection cannot read an object: it deletes nothing this run', { object: what, error });
    };
    let unreadableCount = 0;

    // Blobs first: a blob written after this listing is not considered at all.
    const blobs = new Map<string, StoredObject>();
    for await (const blob of storage.listBlobs()) blobs.set(blob.digest, { size: blob.size, modifiedMs: blob.modifiedMs });
    const documents: (StoredObject & { key: string })[] = [];
    for await (const doc of storage.listDocuments()) documents.push(doc);

    const previous = await this.readState();
    // What the documents say.
    const roots: Descriptorish[] = [];
    /** Digests mentioned by documents of unknown kinds or shapes: kept, and walked if they are manifests. */
    const unknownRoots: string[] = [];
    const referrersOf = new Map<string, Descriptorish[]>();
    const layerEntries: { key: string; digest: string; doc: StoredObject }[] = [];
    /** Manifest cache entries and built indexes: roots unless expired (below). */
    const onDemand: OnDemandEntry[] = [];
    /** `pulled/<hex>` records (service/pulls.ts) by digest. */
    const pulled = new Map<string, { key: string; doc: StoredObject; lastPulled: number; name?: string }>();
    const builtReferrerDocs: { key: string; subject: string; doc: StoredObject }[] = [];
    const addReferrers = (subject: string, value: unknown) => {
      const manifests = (value as { manifests?: unknown })?.manifests;
      if (!Array.isArray(manifests)) return false;
      const list = referrersOf.get(subject) ?? [];
      for (const m of manifests) if (isDescriptor(m)) list.push(m);
      referrersOf.set(subject, list);
      return true;
    };

    await mapLimited(documents, READ_CONCURRENCY, async (doc) => {
      const { key } = doc;
      if (key === GC_STATE_KEY || key === GC_LAST_RUN_KEY) return;
      let value: unknown;
      try {
        value = await storage.getDocument<unknown>(key);
      } catch (error) {
        unreadableCount++;
        return unread(`document ${key}`, error);
      }
      if (value === null) return; // deleted since the listing
      const segments = key.split('/');
      let understood = false;
      if (segments[0] === 'manifests' && isBuildResult(value)) {
        const entryRoots: Descriptorish[] = [value.manifests.docker, value.manifests.oci, value.sbom.referrers.docker, value.sbom.referrers.oci];
        // Leaves: kept, never stat'ed nor read.
        for (const d of [value.config, value.sbom.document, ...value.layers]) entryRoots.push({ digest: d.digest, mediaType: LEAF });
        const name = typeof value.name === 'string' ? value.name : undefined;
        onDemand.push({ key, doc, digests: [value.manifests.docker.digest, value.manifests.oci.digest], roots: entryRoots, ...(name ? { name } : {}), group: `system ${String(value.system)}` });
        return;
      } else if (segments[0] === 'built-indexes' && segments.length === 2 && isDescriptor((value as { manifests?: { oci?: unknown } }).manifests?.oci) && isDescriptor((value as { manifests: { docker?: unknown } }).manifests.docker)) {
        // A multi-platform index built on demand (builder/image-index.ts): a root as built images are.
        const { docker, oci } = (value as { manifests: { docker: Descriptorish; oci: Descriptorish } }).manifests;
        const name = (value as { name?: unknown }).name;
        onDemand.push({ key, doc, digests: [docker.digest, oci.digest], roots: [docker, oci], ...(typeof name === 'string' ? { name } : {}), group: 'index' });
        return;
      } else if (segments[0] === 'pulled' && segments.length === 2 && /^[a-f0-9]{64}$/.test(segments[1]!) && typeof (value as { lastPulled?: unknown }).lastPulled === 'number') {
        // When an on-demand image was last pulled (service/pulls.ts): names no digest to keep.
        const { lastPulled, name } = value as { lastPulled: number; name?: unknown };
        pulled.set(`sha256:${segments[1]}`, { key, doc, lastPulled, ...(typeof name === 'string' ? { name } : {}) });
        return;
      } else if (segments[0] === 'layers' && segments.length === 2 && isDigestString((value as { digest?: unknown }).digest)) {
        layerEntries.push({ key, digest: (value as { digest: string }).digest, doc });
        return;
      } else if (segments[0] === 'pushed' && segments.at(-2) === '_tags' && isDescriptor(value)) {
        roots.push(value);
        understood = true;
      } else if (segments[0] === 'pushed' && segments.at(-2) === '_referrers' && subjectOf(segments.at(-1)!)) {
        understood = addReferrers(subjectOf(segments.at(-1)!)!, value);
        if (understood) return;
      } else if (segments[0] === 'built-referrers' && segments.length === 2 && subjectOf(segments[1]!)) {
        const subject = subjectOf(segments[1]!)!;
        if (addReferrers(subject, value)) {
          builtReferrerDocs.push({ key, subject, doc });
          return;
        }
      } else if (segments[0] === 'pushed-manifests' && segments.length === 2 && subjectOf(segments[1]!)) {
        const repositories = (value as { repositories?: unknown }).repositories;
        if (Array.isArray(repositories)) {
          if (repositories.length > 0) roots.push({ digest: subjectOf(segments[1]!)! });
          return;
        }
      } else if ((segments[0] === 'tags' || segments[0] === 'pulled-tags') && value !== null && typeof value === 'object') {
        return; // tag listings name no digest
      } else if (segments[0] === 'push-locations' && segments.length === 2 && value !== null && typeof value === 'object') {
        return; // where `nixery build --push` put blobs in another registry: a hint that holds nothing here
      }
      // Anything else, and known kinds in an unexpected shape: every digest it mentions is kept.
      if (!understood) {
        const mentioned = JSON.stringify(value).match(DIGEST) ?? [];
        if (mentioned.length > 0) log.info('garbage collection keeps the digests of a document it does not know', { document: key, digests: mentioned.length });
        unknownRoots.push(...mentioned);
      }
    });

    // Sweep decisions, under the two-run rule (made here for expired on-demand entries, which stay
    // roots of this run unless they go in it; the others after the walk).
    const now = this.now();
    const maxCandidates = this.options.maxCandidates ?? MAX_CANDIDATES;
    const maxDeletions = this.options.maxDeletions ?? MAX_DELETIONS;
    const candidates: Record<string, number> = {};
    let candidateCount = 0;
    const deletions: { kind: GcKind; id: string; size: number }[] = [];
    const withinGrace = emptyCounts();
    /** True when `id` goes now; else it is recorded (room permitting) and counted within grace. */
    const decide = (kind: GcKind, id: string, object: StoredObject): boolean => {
      const young = now - object.modifiedMs < graceMs;
      const first = previous.candidates[id];
      if (!young && first !== undefined && now - first >= graceMs && deletions.length < maxDeletions) {
        deletions.push({ kind, id, size: object.size });
        return true;
      }
      withinGrace[kind].objects++;
      withinGrace[kind].bytes += object.size;
      // A young object starts its record only once it is old: written again, it is in use again.
      if (!young && candidateCount < maxCandidates) {
        candidates[id] = first ?? now;
        candidateCount++;
      }
      return false;
    };
    // Previously recorded objects first, so that the cap never drops an old record for a new one.
    const byRecord = <T extends { id: string }>(items: T[]) =>
      [...items].sort((a, b) => Number(previous.candidates[b.id] !== undefined) - Number(previous.candidates[a.id] !== undefined));

    // Retention of on-demand images: an expired entry goes by the two-run rule (a pull in between
    // refreshes its record, it is no longer expired and leaves the record); until it goes it is a
    // root, and its blobs are first recorded by the run that deleted it.
    const expiry = expiredEntries(onDemand, pulled, now, this.options.retentionMs ?? 0, this.options.maxImagesPerName ?? 0);
    const expiredImages: Record<ExpiryReason, Set<string>> = { retention: new Set(), per_name: new Set() };
    const keptDigests = new Set<string>();
    const goneEntries: OnDemandEntry[] = [];
    let keptOnDemand: OnDemandEntry[] = [];
    for (const entry of byRecord(onDemand.map((e) => ({ ...e, id: e.key })))) {
      const reason = expiry.get(entry.key);
      if (reason !== undefined && decide('document', entry.key, entry.doc)) {
        expiredImages[reason].add(entry.digests[0]!);
        goneEntries.push(entry);
        continue;
      }
      keptOnDemand.push(entry);
      for (const d of entry.digests) keptDigests.add(d);
    }
    // Pull records go with the last entry naming their digest, and those naming no on-demand image
    // (pushed manifests pulled by digest) once older than the retention. Records only: at once.
    const named = new Set(onDemand.flatMap((e) => e.digests));
    const retentionMs = this.options.retentionMs ?? 0;
    for (const [digest, record] of pulled) {
      const withEntry = goneEntries.some((e) => e.digests.includes(digest)) && !keptDigests.has(digest);
      const stale = !named.has(digest) && retentionMs > 0 && now - record.lastPulled > retentionMs;
      if ((withEntry || stale) && deletions.length < maxDeletions) deletions.push({ kind: 'document', id: record.key, size: record.doc.size });
    }

    // Walk from the roots: those nothing evicts first, then the on-demand images kept.
    const marked = new Set<string>();
    const walked = new Set<string>();
    const known = new Set(roots.filter((r) => r.mediaType === undefined).map((r) => r.digest));
    const walk = async (start: Descriptorish[]) => {
      let queue = start;
      while (queue.length > 0) {
        const next: Descriptorish[] = [];
        await mapLimited(queue, READ_CONCURRENCY, async (d) => {
          if (walked.has(d.digest)) return;
          walked.add(d.digest);
          marked.add(d.digest);
          for (const r of referrersOf.get(d.digest) ?? []) next.push(r);
          if (!blobs.has(d.digest)) return;
          let mediaType = d.mediaType;
          const mustBeManifest = mediaType === undefined && known.has(d.digest);
          if (mediaType === undefined) {
            try {
              mediaType = (await storage.statBlob(d.digest))?.contentType;
            } catch (error) {
              unreadableCount++;
              return unread(`blob ${d.digest}`, error);
            }
          }
          if (mediaType === undefined || (!MANIFEST_TYPES.has(mediaType) && !mustBeManifest && !looksLikeManifestType(mediaType))) return;
          let manifest: unknown;
          try {
            manifest = JSON.parse((await storage.readBlob(d.digest)).toString('utf8'));
          } catch (error) {
            if ((error as { code?: string }).code === 'BLOB_UNKNOWN') return;
            unreadableCount++;
            return unread(`manifest ${d.digest}`, error);
          }
          next.push(...childrenOf(manifest));
        });
        queue = next;
      }
    };
    await walk([...roots, ...unknownRoots.map((digest) => ({ digest }))]);

    // ---- Storage quota (service/quota.ts): evict on-demand images, least recently used first.
    const quotaBytes = this.options.quotaBytes;
    let eviction: { images: number; bytes: number } | undefined;
    let pinnedMarked: Set<string> | undefined;
    if (quotaBytes !== undefined && unreadableCount === 0) {
      pinnedMarked = new Set(marked);
      let inUseBytes = 0;
      for (const object of blobs.values()) inUseBytes += object.size;
      for (const doc of documents) inUseBytes += doc.size;
      const onDemandDigests = new Set(keptOnDemand.flatMap((e) => e.roots.map((r) => r.digest)));
      // Unreferenced blobs count as leaving whatever their age: a young one is most often an
      // evicted image's, which goes by the two-run rule once old (a blob a push is uploading
      // before its manifest is counted a pass late: the estimate errs low by a push in progress).
      let leavingBytes = deletions.reduce((sum, d) => sum + d.size, 0);
      const held = pinnedMarked;
      for (const [digest, object] of blobs) if (!pinnedMarked.has(digest) && !onDemandDigests.has(digest)) leavingBytes += object.size;
      // By image (its first manifest digest): the entries of one image (by name and by what it resolved to) go together.
      const byImage = new Map<string, { lastUsed: number; digests: string[]; entries: OnDemandEntry[] }>();
      for (const e of keptOnDemand) {
        const image = byImage.get(e.digests[0]!) ?? { lastUsed: Number.NEGATIVE_INFINITY, digests: [], entries: [] };
        image.lastUsed = Math.max(image.lastUsed, lastUsedOf(e, pulled));
        image.digests.push(...e.roots.map((r) => r.digest));
        image.entries.push(e);
        byImage.set(e.digests[0]!, image);
      }
      const decision = chooseEvictions({
        candidates: [...byImage].map(([digest, image]) => ({ key: digest, lastUsed: image.lastUsed, digests: image.digests })),
        blobSizes: new Map([...blobs].map(([digest, object]) => [digest, object.size])),
        held,
        inUseBytes,
        leavingBytes,
        quotaBytes,
      });
      // An evicted entry goes in this run (a later pull builds it again); its blobs by the sweep's rules.
      const evicted = new Set<string>();
      for (const digest of decision.evicted) {
        const { entries } = byImage.get(digest)!;
        if (deletions.length + entries.length > maxDeletions) break;
        for (const entry of entries) {
          deletions.push({ kind: 'document', id: entry.key, size: entry.doc.size });
          evicted.add(entry.key);
        }
      }
      keptOnDemand = keptOnDemand.filter((e) => !evicted.has(e.key));
      const stillNamed = new Set(keptOnDemand.flatMap((e) => e.digests));
      const images = new Set<string>();
      for (const key of evicted) {
        const entry = onDemand.find((e) => e.key === key)!;
        images.add(entry.digests[0]!);
        for (const d of entry.digests) {
          const record = pulled.get(d);
          if (record && !stillNamed.has(d) && deletions.length < maxDeletions && !deletions.some((x) => x.id === record.key)) deletions.push({ kind: 'document', id: record.key, size: record.doc.size });
        }
      }
      eviction = { images: images.size, bytes: evicted.size ? decision.freedBytes : 0 };
      if (evicted.size) log.info('storage quota: evicting on-demand images, least recently used first; their blobs go by the grace rule', { quotaBytes, inUseBytes, leavingBytes, images: images.size, documents: evicted.size, freedBytes: decision.freedBytes });
    }
    await walk(keptOnDemand.flatMap((e) => e.roots));
    /** What the roots reach; layer cache entries waiting for the two-run rule mark their blobs too, below, but those are leaving. */
    const reached = new Set(marked);

    const report: GcReport = {
      dryRun,
      result: unreadableCount > 0 ? 'incomplete' : 'ok',
      deleted: emptyCounts(),
      expired: { retention: expiredImages.retention.size, per_name: expiredImages.per_name.size },
      withinGrace,
      kept: { blobs: { objects: 0, bytes: 0 }, documents: { objects: 0, bytes: 0 } },
      unreadable,
      ...(quotaBytes !== undefined ? { quota: { quotaBytes, evictedImages: eviction?.images ?? 0, evictedBytes: eviction?.bytes ?? 0, measure: { inUseBytes: 0, pinnedBytes: 0, leavingBytes: 0 } } } : {}),
      graceSeconds: graceMs / 1000,
      durationSeconds: 0,
    };
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    if (report.result === 'incomplete') {
      report.durationSeconds = seconds();
      await recordGcRun(storage, report, new Date(this.now()), log);
      return report;
    }

    // The other sweep decisions.
    // Layer cache entries: kept with a kept blob; otherwise by the rule, their blob kept meanwhile.
    for (const entry of byRecord(layerEntries.map((e) => ({ ...e, id: e.key })))) {
      if (marked.has(entry.digest)) continue;
      if (!decide('layer_cache_entry', entry.key, entry.doc)) marked.add(entry.digest);
    }
    // Referrer indexes of built images whose subject is gone.
    for (const doc of byRecord(builtReferrerDocs.map((d) => ({ ...d, id: d.key })))) {
      if (marked.has(doc.subject) || blobs.has(doc.subject)) continue;
      decide('document', doc.key, doc.doc);
    }
    const unreferenced = [...blobs].filter(([digest]) => !marked.has(digest)).map(([digest, object]) => ({ id: digest, object }));
    for (const blob of byRecord(unreferenced)) decide('blob', blob.id, blob.object);

    // Layer cache entries and documents before blobs: no entry ever names a deleted blob.
    const order: Record<GcKind, number> = { layer_cache_entry: 0, document: 1, blob: 2 };
    deletions.sort((a, b) => order[a.kind] - order[b.kind]);
    const deletedIds = new Set<string>();
    for (const d of deletions) {
      options.signal?.throwIfAborted();
      if (!dryRun) {
        const gone = d.kind === 'blob' ? await storage.deleteBlob(d.id) : await storage.deleteDocument(d.id);
        if (!gone) continue;
      }
      deletedIds.add(d.id);
      report.deleted[d.kind].objects++;
      report.deleted[d.kind].bytes += d.size;
    }

    for (const [digest, object] of blobs) {
      if (deletedIds.has(digest)) continue;
      report.kept.blobs.objects++;
      report.kept.blobs.bytes += object.size;
    }
    for (const doc of documents) {
      if (deletedIds.has(doc.key)) continue;
      report.kept.documents.objects++;
      report.kept.documents.bytes += doc.size;
    }
    options.signal?.throwIfAborted();
    if (report.quota) {
      // What stays, what nothing evicts (reachable from pinned roots; documents), what is on its way out (unreferenced).
      const measure = report.quota.measure;
      measure.inUseBytes = report.kept.blobs.bytes + report.kept.documents.bytes;
      measure.pinnedBytes = report.kept.documents.bytes;
      for (const [digest, object] of blobs) {
        if (deletedIds.has(digest)) continue;
        if (pinnedMarked?.has(digest)) measure.pinnedBytes += object.size;
        else if (!reached.has(digest)) measure.leavingBytes += object.size;
      }
    }
    if (!dryRun) await storage.putDocument(GC_STATE_KEY, { version: 1, candidates } satisfies GcState);
    report.durationSeconds = seconds();
    await recordGcRun(storage, report, new Date(this.now()), log);
    return report;
  }

  /** The records of earlier runs; a state this code cannot read starts over (that only delays deletion). */
  private async readState(): Promise<GcState> {
    try {
      const state = await this.options.storage.getDocument<GcState>(GC_STATE_KEY);
      if (state && state.version === 1 && state.candidates !== null && typeof state.candidates === 'object') {
        const candidates: Record<string, number> = {};
        for (const [id, at] of Object.entries(state.candidates)) if (typeof at === 'number' && Number.isFinite(at)) candidates[id] = at;
        return { version: 1, candidates };
      }
      if (state) this.options.log.warn('the garbage collection state is not what this registry writes; it starts over', { document: GC_STATE_KEY });
    } catch (error) {
      this.options.log.warn('the garbage collection state cannot be read; it starts over', { document: GC_STATE_KEY, error });
    }
    return { version: 1, candidates: {} };
  }
}

/** A manifest cache entry or built-index document: what it keeps, and what its retention reads. */
interface OnDemandEntry {
  key: string;
  doc: StoredObject;
  /** Its manifests' digests (Docker's first), as pulls record them. */
  digests: string[];
  roots: Descriptorish[];
  /** The name it was built by (a build result's; a built index's from this version on), else a pull record's. */
  name?: string;
  /** What it counts among in its name: its platform (system), or `index`. */
  group: string;
}

/**
 * Which on-demand entries are expired, and why. An entry was last used when its document was
 * written (the build) or, if later, when a pull of either of its manifests was last recorded.
 * Retention: unused for longer than `retentionMs`. Per name: the entries of one name and platform
 * (or of one name's indexes) are ranked by image (manifest digest: entries of one image share its
 * fate), most recently used first; images beyond the first `maxPerName` expire. An entry with no
 * name (a built index written before indexes recorded theirs, never pulled since) has no limit.
 */
function expiredEntries(
  entries: readonly OnDemandEntry[],
  pulled: ReadonlyMap<string, { lastPulled: number; name?: string }>,
  now: number,
  retentionMs: number,
  maxPerName: number,
): Map<string, ExpiryReason> {
  const expired = new Map<string, ExpiryReason>();
  const lastUsed = new Map<OnDemandEntry, number>();
  for (const entry of entries) {
    const used = lastUsedOf(entry, pulled);
    lastUsed.set(entry, used);
    if (retentionMs > 0 && now - used > retentionMs) expired.set(entry.key, 'retention');
  }
  if (maxPerName > 0) {
    const groups = new Map<string, Map<string, { used: number; entries: OnDemandEntry[] }>>();
    for (const entry of entries) {
      const name = entry.name ?? entry.digests.map((d) => pulled.get(d)).filter((r) => r?.name !== undefined).sort((a, b) => b!.lastPulled - a!.lastPulled)[0]?.name;
      if (name === undefined) continue;
      const groupKey = `${name}\n${entry.group}`;
      let images = groups.get(groupKey);
      if (!images) groups.set(groupKey, (images = new Map()));
      const image = images.get(entry.digests[0]!) ?? { used: Number.NEGATIVE_INFINITY, entries: [] };
      image.used = Math.max(image.used, lastUsed.get(entry)!);
      image.entries.push(entry);
      images.set(entry.digests[0]!, image);
    }
    for (const images of groups.values()) {
      const ranked = [...images].sort(([da, a], [db, b]) => b.used - a.used || (da < db ? -1 : 1));
      for (const [, image] of ranked.slice(maxPerName)) for (const entry of image.entries) if (!expired.has(entry.key)) expired.set(entry.key, 'per_name');
    }
  }
  return expired;
}

/** When an on-demand entry was last used: its document's write (the build), or a later recorded pull of either manifest. */
function lastUsedOf(entry: OnDemandEntry, pulled: ReadonlyMap<string, { lastPulled: number }>): number {
  let used = entry.doc.modifiedMs;
  for (const d of entry.digests) used = Math.max(used, pulled.get(d)?.lastPulled ?? Number.NEGATIVE_INFINITY);
  return used;
}

/** What a manifest or index names: config, layers (and an artifact's blobs), child manifests. Not its subject. */
function childrenOf(manifest: unknown): Descriptorish[] {
  if (manifest === null || typeof manifest !== 'object') return [];
  const m = manifest as { config?: unknown; layers?: unknown; manifests?: unknown; blobs?: unknown };
  const out: Descriptorish[] = [];
  // Config and layers are kept, never read: the digest alone, typed so the walk does not stat them.
  const leaf = (d: unknown) => {
    if (isDescriptor(d)) out.push({ digest: d.digest, mediaType: MANIFEST_TYPES.has(d.mediaType ?? '') ? d.mediaType! : LEAF });
  };
  leaf(m.config);
  for (const list of [m.layers, m.blobs]) if (Array.isArray(list)) list.forEach(leaf);
  if (Array.isArray(m.manifests)) for (const d of m.manifests) if (isDescriptor(d)) out.push({ digest: d.digest, ...(d.mediaType ? { mediaType: d.mediaType } : {}) });
  return out;
}

function looksLikeManifestType(mediaType: string): boolean {
  return /manifest|index/.test(mediaType) && mediaType.endsWith('+json');
}

function isDigestString(value: unknown): value is string {
  return typeof value === 'string' && /^sha256:[a-f0-9]{64}$/.test(value);
}

function isDescriptor(value: unknown): value is Descriptorish {
  if (value === null || typeof value !== 'object') return false;
  const v = value as { digest?: unknown; mediaType?: unknown };
  return typeof v.digest === 'string' && (v.mediaType === undefined || typeof v.mediaType === 'string');
}

/** `sha256-<hex>` in a key → `sha256:<hex>`. */
function subjectOf(segment: string): string | undefined {
  const m = KEYED_DIGEST.exec(segment);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

interface BuildResultShape {
  name?: unknown;
  system?: unknown;
  manifests: { docker: Descriptorish; oci: Descriptorish };
  config: Descriptorish;
  layers: Descriptorish[];
  sbom: { document: Descriptorish; referrers: { docker: Descriptorish; oci: Descriptorish } };
}

function isBuildResult(value: unknown): value is BuildResultShape {
  const v = value as Partial<BuildResultShape> | null;
  return (
    v !== null &&
    typeof v === 'object' &&
    isDescriptor(v.manifests?.docker) &&
    isDescriptor(v.manifests?.oci) &&
    isDescriptor(v.config) &&
    Array.isArray(v.layers) &&
    v.layers.every(isDescriptor) &&
    isDescriptor(v.sbom?.document) &&
    isDescriptor(v.sbom?.referrers?.docker) &&
    isDescriptor(v.sbom?.referrers?.oci)
  );
}

/** The retention settings of a configuration, as GarbageCollectorOptions take them. */
export function retention(config: { gc: { retainPulledWithinSeconds: number; maxImagesPerName: number } }): Pick<GarbageCollectorOptions, 'retentionMs' | 'maxImagesPerName'> {
  return { retentionMs: config.gc.retainPulledWithinSeconds * 1000, maxImagesPerName: config.gc.maxImagesPerName };
}

// ---------------------------------------------------------------------------------------------
// Periodic runs in the server (NIXERY_GC_INTERVAL), as service/purge.ts runs the purge.

export interface PeriodicGcOptions {
  collector: Pick<GarbageCollector, 'collect'>;
  metrics: Pick<Metrics, 'gcRuns' | 'gcDuration' | 'gcSweptObjects' | 'gcSweptBytes' | 'gcExpiredImages' | 'storageBytes' | 'storageQuotaEvictions' | 'storageEstimatedBytes'>;
  log: Logger;
  intervalMs: number;
  /** Replicas sharing the storage: a run holds the GC lease (gc-lease.ts), and is skipped while another replica does. */
  leases?: Leases;
  /** With a storage quota: told each complete run's measure (service/quota.ts). */
  usage?: Pick<StorageUsage, 'record' | 'estimateBytes'>;
  /** With a quota and leases: where a skipped run reads the measure another replica's run recorded. */
  storage?: Pick<StorageBackend, 'getDocument'>;
  /**
   * With a storage quota: a run that evicted is followed by one this long after it (the grace
   * delay), which sweeps the evicted images' blobs, whatever the interval.
   */
  followUpMs?: number;
}

/** run() resolves undefined when a run failed or was skipped (another replica holds the GC lease). */
export class PeriodicGc extends PeriodicRun<GcReport | undefined> {
  private readonly options: PeriodicGcOptions;
  private followUp: NodeJS.Timeout | undefined;
  private halted = false;
  /** When the quota measure last adopted from another replica's run was made (ms). */
  private adoptedAt = Number.NEGATIVE_INFINITY;

  constructor(options: PeriodicGcOptions) {
    if (!(options.intervalMs > 0)) throw new RangeError('the garbage collection interval must be positive');
    super(options.intervalMs);
    this.options = options;
  }

  override async stop(): Promise<void> {
    this.halted = true;
    clearTimeout(this.followUp);
    await super.stop();
  }

  /** After an eviction: one more run a grace delay later, when the evicted blobs may go. */
  private scheduleFollowUp(): void {
    const { followUpMs } = this.options;
    if (followUpMs === undefined || this.halted || this.followUp) return;
    this.followUp = setTimeout(() => {
      this.followUp = undefined;
      void this.run();
    }, followUpMs + 1000);
    this.followUp.unref();
  }

  /**
   * A replica whose runs are skipped measures nothing itself: with a quota, it takes the measure
   * of the last complete run, whichever replica made it (storage-status.ts's record), when newer.
   */
  private async adoptQuotaMeasure(): Promise<void> {
    const { usage, storage, metrics, log } = this.options;
    if (!usage || !storage) return;
    try {
      const quota = (await readStorageStatusDocument(storage))?.quota;
      const at = quota ? Date.parse(quota.measuredAt) : Number.NaN;
      if (!quota || !(at > this.adoptedAt)) return;
      this.adoptedAt = at;
      usage.record({ inUseBytes: quota.inUseBytes, pinnedBytes: quota.pinnedBytes, leavingBytes: quota.leavingBytes });
      const estimate = usage.estimateBytes;
      if (estimate !== undefined) metrics.storageEstimatedBytes.set(estimate);
    } catch (error) {
      log.warn('the last garbage collection run\'s quota measure could not be read', { error });
    }
  }

  protected async runOnce(): Promise<GcReport | undefined> {
    const { collector, metrics, log, leases } = this.options;
    const started = process.hrtime.bigint();
    let lease: HeldLease | undefined;
    try {
      if (leases) {
        const got = await leases.tryAcquire(GC_LEASE);
        if (!isHeld(got)) {
          log.info('garbage collection run skipped: another replica is collecting', { holder: got.holder, leaseExpiresMs: got.expiresMs });
          await this.adoptQuotaMeasure();
          return undefined;
        }
        lease = got;
      }
      const report = await collector.collect(lease ? { signal: lease.signal } : {});
      metrics.gcRuns.inc({ result: report.result });
      metrics.gcDuration.observe(report.durationSeconds);
      for (const kind of KINDS) {
        metrics.gcSweptObjects.inc({ kind }, report.deleted[kind].objects);
        metrics.gcSweptBytes.inc({ kind }, report.deleted[kind].bytes);
      }
      for (const reason of EXPIRY_REASONS) metrics.gcExpiredImages.inc({ reason }, report.expired[reason]);
      if (report.result === 'ok') {
        metrics.storageBytes.set({ kind: 'blob' }, report.kept.blobs.bytes);
        metrics.storageBytes.set({ kind: 'document' }, report.kept.documents.bytes);
      }
      if (report.quota && report.result === 'ok') {
        metrics.storageQuotaEvictions.inc(report.quota.evictedImages);
        this.options.usage?.record(report.quota.measure);
        const estimate = this.options.usage?.estimateBytes;
        if (estimate !== undefined) metrics.storageEstimatedBytes.set(estimate);
        if (report.quota.evictedImages > 0) this.scheduleFollowUp();
      }
      (report.result === 'ok' ? log.info : log.warn).call(log, 'garbage collection run', { ...report });
      return report;
    } catch (error) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.gcRuns.inc({ result: 'error' });
      metrics.gcDuration.observe(seconds);
      log.warn('garbage collection run failed; nothing more is deleted until the next run', { error, durationSeconds: seconds });
      return undefined;
    } finally {
      await lease?.release();
    }
  }
}
