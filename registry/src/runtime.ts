// What a build needs, shared by `nixery serve` and `nixery build`: configuration, storage, metrics
// and the builder. Apart from server.ts, so that `nixery build` does not load the HTTP app
// (express, the API areas, authentication), which a build never uses.
import { ImageBuilder } from './builder/builder.ts';
import { buildVolumes, FreeSpace } from './builder/free-space.ts';
import type { Config } from './config/config.ts';
import { loadPopularity } from './layers/index.ts';
import type { Logger } from './log/logger.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import { PullRecorder } from './service/pulls.ts';
import { meterWrites, StorageUsage } from './service/quota.ts';
import { BuildRoots } from './nix/gc-roots.ts';
import { StoreGate } from './nix/store-gate.ts';
import { TagIndex } from './service/tags.ts';
import type { StorageBackend } from './storage/backend.ts';
import { openStorage } from './storage/create.ts';
import { Leases, type LeaseEvent } from './storage/lease.ts';

export interface Runtime {
  config: Config;
  storage: StorageBackend;
  builder: ImageBuilder;
  metrics: Metrics;
  log: Logger;
  /** `serve` only: served tags, flushed to storage in batches; close() it at shutdown. */
  tags: TagIndex;
  /** `serve` only: when on-demand images were last pulled, flushed in batches; close() it at shutdown. */
  pulls: PullRecorder;
  /** Build and GC leases in the shared storage (storage/lease.ts), this process's holder name. */
  leases: Leases;
  /** With NIXERY_STORAGE_QUOTA: this process's estimate of the storage in use (service/quota.ts). */
  usage?: StorageUsage;
  /** With NIXERY_NIX_GC_INTERVAL: builds root their store paths; startServer collects the store (nix/store-gc.ts). */
  nixStore?: { gate: StoreGate; roots: BuildRoots };
}

/** Everything a build needs, shared by `serve` and `build`. */
export async function createRuntime(config: Config, log: Logger, options: { defaultMetrics?: boolean; signal?: AbortSignal } = {}): Promise<Runtime> {
  const opened = await openStorage(config.storage, log, { stagingTtlMs: config.purge.stagingTtlSeconds * 1000 });
  const popularity = await loadPopularity(config.popularityUrl);
  const { signal, ...metricsOptions } = options;
  const freeSpace = new FreeSpace({ volumes: buildVolumes(config.storage), reserve: config.minFreeSpace });
  const metrics = createMetrics({ ...metricsOptions, freeSpace: () => freeSpace.sample() });
  // ---- Storage quota: writes counted into the estimate; startServer's collector evicts.
  const usage = config.storageQuotaBytes === undefined ? undefined : new StorageUsage({ quotaBytes: config.storageQuotaBytes, retryAfterSeconds: config.gc.graceSeconds });
  const storage = usage
    ? meterWrites(opened, {
        noteWrite: (bytes) => {
          usage.noteWrite(bytes);
          if (usage.estimateBytes !== undefined) metrics.storageEstimatedBytes.set(usage.estimateBytes);
        },
      })
    : opened;
  if (usage) metrics.storageQuotaBytes.set(usage.quotaBytes);
  // ---- Nix store collection: builds root their paths while in flight.
  const nixStore = config.nixGc.intervalSeconds > 0 ? { gate: new StoreGate(), roots: new BuildRoots({ log: log.child({ component: 'nix-gc' }) }) } : undefined;
  await nixStore?.roots.removeStale();
  const leases = createLeases(storage, config, log, metrics);
  const builder = new ImageBuilder({
    ...(usage ? { quota: usage } : {}),
    ...(nixStore ? { nixStore } : {}),
    ...(signal ? { signal } : {}),
    freeSpace,
    storage,
    source: config.source,
    nixTimeoutSeconds: config.nixTimeoutSeconds,
    layerBudget: config.layerBudget,
    layerCompression: config.layerCompression,
    maxConcurrentBuilds: config.maxConcurrentBuilds,
    maxQueuedBuilds: config.maxQueuedBuilds,
    clientBuildsPerMinute: config.clientBuildsPerMinute,
    popularity,
    log,
    metrics,
    leases,
    // The bundled set builds everything from a local busybox: asking a binary cache only costs
    // Nix's retries (seconds per call) on machines without network access.
    ...(config.sourceIsDefault ? { nixOptions: { substituters: '' } } : {}),
  });
  const tags = new TagIndex(storage, {
    flushIntervalMs: config.tagFlushIntervalSeconds * 1000,
    maxRecorded: config.maxRecordedTags,
    log,
    onDropped: (reason, n) => metrics.tagsDropped.inc({ reason }, n),
  });
  const pulls = new PullRecorder(storage, { flushIntervalMs: config.tagFlushIntervalSeconds * 1000, log });
  return { config, storage, builder, metrics, log, tags, pulls, leases, ...(usage ? { usage } : {}), ...(nixStore ? { nixStore } : {}) };
}

/** This process's leases on the storage, counted in nixery_lease_events_total by their first name segment (build, gc). */
export function createLeases(storage: StorageBackend, config: Config, log: Logger, metrics?: Metrics): Leases {
  return new Leases({
    storage,
    durationMs: config.leaseDurationSeconds * 1000,
    log: log.child({ component: 'lease' }),
    ...(metrics ? { onEvent: (event: LeaseEvent, name: string) => metrics.leaseEvents.inc({ lease: name.split('/')[0]!, event }) } : {}),
  });
}
