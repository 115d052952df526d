// Prometheus metrics. Each server gets its own registry so tests can run several side by side.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  httpDuration: Histogram<'route'>;
  /** `result`: an Outcome of builder/outcome.ts ('success', 'not_found', 'nix_failure', ...). */
  builds: Counter<'result'>;
  buildDuration: Histogram<'result'>;
  buildsInFlight: Gauge;
  /** Builds waiting for a slot (at most NIXERY_MAX_QUEUED_BUILDS). */
  buildQueueLength: Gauge;
  /**
   * Builds refused or dropped, by `reason`: 'queue_full' and 'rate_limited' (429, nothing ran),
   * 'abandoned' (queued, every client left: never started), 'closure_too_large' (403 after Nix, before packing).
   */
  buildsRejected: Counter<'reason'>;
  bytesServed: Counter<'kind'>;
  /** Client connections open now (http/connections.ts). */
  openConnections: Gauge;
  /** `reason`: 'max_connections' (refused on arrival), 'send_stall' (the client took no bytes). */
  connectionsClosed: Counter<'reason'>;
  /** `volume`: 'storage', 'nix_store' (builder/free-space.ts); read at each scrape. */
  freeBytes: Gauge<'volume'>;
  freeReserveBytes: Gauge<'volume'>;
  layerCache: Counter<'result'>;
  manifestCache: Counter<'result'>;
  /** Pulled tags served but not recorded for the listing (service/tags.ts): `index_full` or `pending_full`. */
  tagsDropped: Counter<'reason'>;
  /** Runs of the purge of abandoned data (service/purge.ts), by `result`: 'ok' or 'error'. */
  purgeRuns: Counter<'result'>;
  purgeDuration: Histogram;
  /** What the purge removed, by `kind`: 'upload_session' or 'staging'. */
  purgedObjects: Counter<'kind'>;
  purgedBytes: Counter<'kind'>;
  /** Garbage collection runs (service/gc.ts), by `result`: 'ok', 'incomplete' (something unreadable: nothing deleted) or 'error'. */
  gcRuns: Counter<'result'>;
  gcDuration: Histogram;
  /** What garbage collection deleted, by `kind`: 'blob', 'layer_cache_entry' or 'document'. */
  gcSweptObjects: Counter<'kind'>;
  gcSweptBytes: Counter<'kind'>;
  /** On-demand images garbage collection expired (their cache entries deleted), by `reason`: 'retention' or 'per_name'. */
  gcExpiredImages: Counter<'reason'>;
  /** Bytes in use after the last complete run, by `kind`: 'blob' or 'document'. */
  storageBytes: Gauge<'kind'>;
  // --- Leases across replicas (storage/lease.ts) ---
  /**
   * Lease events by `lease` ('build', 'gc') and `event`: 'acquired', 'taken_over' (its holder had
   * stopped renewing it), 'busy' (another replica holds it: a build waits, a GC run is skipped), 'lost'.
   */
  leaseEvents: Counter<'lease' | 'event'>;
  /** Waits for a build another replica holds the lease of, by `result`: 'served' (its image came from storage), 'built_here' (its lease was released or expired without the image, or the wait ran out). */
  leaseWaits: Counter<'result'>;
  // ---- Storage quota and Nix store collection (service/quota.ts, nix/store-gc.ts)
  /** NIXERY_STORAGE_QUOTA in bytes (absent: no quota). */
  storageQuotaBytes: Gauge;
  /** This process's estimate of the storage in use against the quota: the last pass's measure plus its writes since. */
  storageEstimatedBytes: Gauge;
  /** On-demand images evicted to stay under the quota. */
  storageQuotaEvictions: Counter;
  /** Collections of the registry's Nix store, by result: ok, error. */
  nixStoreGcRuns: Counter<'result'>;
  /** Bytes the Nix store collections freed. */
  nixStoreGcFreedBytes: Counter;
}

/** Free space as builder/free-space.ts measures it. */
export type FreeSpaceSampler = () => Promise<{ volume: string; freeBytes: number; reserveBytes: number }[]>;

export function createMetrics(options: { defaultMetrics?: boolean; freeSpace?: FreeSpaceSampler } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'nixery_' });
  const registers = [registry];
  const freeSpaceGauge = (name: string, help: string, field: 'freeBytes' | 'reserveBytes') =>
    new Gauge({
      name,
      help,
      labelNames: ['volume'],
      registers,
      async collect() {
        // One statfs per volume, at each scrape; a volume that cannot be measured has no sample.
        this.reset();
        const samples = await options.freeSpace?.().catch(() => []);
        for (const sample of samples ?? []) this.set({ volume: sample.volume }, sample[field]);
      },
    });
  return {
    registry,
    httpRequests: new Counter({
      name: 'nixery_http_requests_total',
      help: 'HTTP requests by route, method and status code',
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'nixery_http_request_duration_seconds',
      help: 'HTTP request duration by route',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
      registers,
    }),
    builds: new Counter({ name: 'nixery_builds_total', help: 'Image builds by result', labelNames: ['result'], registers }),
    buildDuration: new Histogram({
      name: 'nixery_build_duration_seconds',
      help: 'Image build duration by result',
      labelNames: ['result'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
      registers,
    }),
    buildsInFlight: new Gauge({ name: 'nixery_builds_in_flight', help: 'Image builds currently running', registers }),
    openConnections: new Gauge({ name: 'nixery_http_open_connections', help: 'Client connections open now', registers }),
    connectionsClosed: new Counter({
      name: 'nixery_http_connections_closed_total',
      help: 'Connections the server closed by a limit: max_connections (refused on arrival), send_stall (the client took no bytes)',
      labelNames: ['reason'],
      registers,
    }),
    freeBytes: freeSpaceGauge('nixery_free_bytes', 'Free bytes on the file systems new builds write to: storage (filesystem backend), nix_store', 'freeBytes'),
    freeReserveBytes: freeSpaceGauge(
      'nixery_free_reserve_bytes',
      'Free bytes each file system keeps (NIXERY_MIN_FREE_SPACE): below it no build starts',
      'reserveBytes',
    ),
    buildQueueLength: new Gauge({ name: 'nixery_build_queue_length', help: 'Image builds waiting for a build slot', registers }),
    buildsRejected: new Counter({
      name: 'nixery_builds_rejected_total',
      help: 'Image builds refused or dropped, by reason: queue_full, rate_limited, abandoned (queued, every client left), closure_too_large, over_quota',
      labelNames: ['reason'],
      registers,
    }),
    bytesServed: new Counter({
      name: 'nixery_served_bytes_total',
      help: 'Bytes of blob and manifest bodies sent to clients',
      labelNames: ['kind'],
      registers,
    }),
    layerCache: new Counter({ name: 'nixery_layer_cache_total', help: 'Layer cache lookups by result', labelNames: ['result'], registers }),
    manifestCache: new Counter({
      name: 'nixery_manifest_cache_total',
      help: 'Manifest cache lookups by result',
      labelNames: ['result'],
      registers,
    }),
    tagsDropped: new Counter({
      name: 'nixery_tag_index_dropped_total',
      help: 'Pulled tags served but not recorded for the tag listing, by reason (index_full, pending_full)',
      labelNames: ['reason'],
      registers,
    }),
    purgeRuns: new Counter({
      name: 'nixery_purge_runs_total',
      help: 'Runs of the purge of abandoned upload sessions and staging objects, by result (ok, error)',
      labelNames: ['result'],
      registers,
    }),
    purgeDuration: new Histogram({
      name: 'nixery_purge_duration_seconds',
      help: 'Duration of a purge run of abandoned upload sessions and staging objects',
      buckets: [0.01, 0.1, 0.5, 2, 10, 60, 300],
      registers,
    }),
    purgedObjects: new Counter({
      name: 'nixery_purged_objects_total',
      help: 'Abandoned objects the purge removed, by kind: upload_session (idle past NIXERY_UPLOAD_SESSION_TTL), staging (older than NIXERY_STAGING_TTL)',
      labelNames: ['kind'],
      registers,
    }),
    purgedBytes: new Counter({
      name: 'nixery_purged_bytes_total',
      help: 'Bytes of the abandoned objects the purge removed, by kind (upload_session, staging)',
      labelNames: ['kind'],
      registers,
    }),
    gcRuns: new Counter({
      name: 'nixery_gc_runs_total',
      help: 'Garbage collection runs, by result (ok; incomplete: something could not be read, nothing deleted; error)',
      labelNames: ['result'],
      registers,
    }),
    gcDuration: new Histogram({
      name: 'nixery_gc_duration_seconds',
      help: 'Duration of a garbage collection run (listing, marking and sweeping storage)',
      buckets: [0.1, 1, 5, 30, 120, 600, 1800],
      registers,
    }),
    gcSweptObjects: new Counter({
      name: 'nixery_gc_swept_objects_total',
      help: 'Objects garbage collection deleted, by kind (blob, layer_cache_entry, document)',
      labelNames: ['kind'],
      registers,
    }),
    gcSweptBytes: new Counter({
      name: 'nixery_gc_swept_bytes_total',
      help: 'Bytes of the objects garbage collection deleted, by kind (blob, layer_cache_entry, document)',
      labelNames: ['kind'],
      registers,
    }),
    gcExpiredImages: new Counter({
      name: 'nixery_gc_expired_images_total',
      help: 'On-demand images garbage collection expired (manifest cache entries or built indexes deleted; blobs follow by the grace rule), by reason (retention: not pulled within NIXERY_RETAIN_PULLED_WITHIN; per_name: beyond NIXERY_GC_MAX_IMAGES_PER_NAME)',
      labelNames: ['reason'],
      registers,
    }),
    storageBytes: new Gauge({
      name: 'nixery_storage_bytes',
      help: 'Bytes stored after the last complete garbage collection run, by kind (blob, document)',
      labelNames: ['kind'],
      registers,
    }),
    leaseEvents: new Counter({
      name: 'nixery_lease_events_total',
      help: 'Leases in the shared storage, by lease (build, gc) and event (acquired, taken_over, busy: held by another replica, lost)',
      labelNames: ['lease', 'event'],
      registers,
    }),
    leaseWaits: new Counter({
      name: 'nixery_lease_waits_total',
      help: 'Waits for a build another replica holds the lease of, by result (served: from storage; built_here: the lease ended without the image)',
      labelNames: ['result'],
      registers,
    }),
    // ---- Storage quota and Nix store collection
    storageQuotaBytes: new Gauge({ name: 'nixery_storage_quota_bytes', help: 'The storage quota (NIXERY_STORAGE_QUOTA): above it, on-demand images are evicted', registers }),
    storageEstimatedBytes: new Gauge({
      name: 'nixery_storage_estimated_bytes',
      help: "This replica's estimate of the storage in use against the quota: the last garbage collection's measure (minus what is leaving) plus its own writes since",
      registers,
    }),
    storageQuotaEvictions: new Counter({
      name: 'nixery_storage_quota_evictions_total',
      help: 'On-demand images evicted, least recently pulled first, to keep the storage under NIXERY_STORAGE_QUOTA (their blobs follow by the grace rule)',
      registers,
    }),
    nixStoreGcRuns: new Counter({ name: 'nixery_nix_store_gc_runs_total', help: "Collections of the registry's Nix store, by result (ok, error)", labelNames: ['result'], registers }),
    nixStoreGcFreedBytes: new Counter({ name: 'nixery_nix_store_gc_freed_bytes_total', help: "Bytes the collections of the registry's Nix store freed", registers }),
  };
}
