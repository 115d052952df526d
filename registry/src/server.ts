// Wires configuration, storage, the builder and the HTTP app together.
import type { Server } from 'node:http';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Uploads } from './push/uploads.ts';
import { ImageBuilder } from './builder/builder.ts';
import { buildVolumes, FreeSpace } from './builder/free-space.ts';
import type { Config } from './config/config.ts';
import { createApp } from './http/app.ts';
import { createHttpServer } from './http/connections.ts';
import { compilePackagePolicy } from './image/package-policy.ts';
import { describeSource } from './http/index-page.ts';
import { loadPopularity } from './layers/index.ts';
import type { Logger } from './log/logger.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import { TagIndex } from './service/tags.ts';
import type { StorageBackend } from './storage/backend.ts';
import { openStorage } from './storage/create.ts';

export interface Runtime {
  config: Config;
  storage: StorageBackend;
  builder: ImageBuilder;
  metrics: Metrics;
  log: Logger;
  /** `serve` only: served tags, flushed to storage in batches; close() it at shutdown. */
  tags: TagIndex;
}

/** Everything a build needs, shared by `serve` and `build`. */
export async function createRuntime(config: Config, log: Logger, options: { defaultMetrics?: boolean; signal?: AbortSignal } = {}): Promise<Runtime> {
  const storage = await openStorage(config.storage, log);
  const popularity = await loadPopularity(config.popularityUrl);
  const { signal, ...metricsOptions } = options;
  const freeSpace = new FreeSpace({ volumes: buildVolumes(config.storage), reserve: config.minFreeSpace });
  const metrics = createMetrics({ ...metricsOptions, freeSpace: () => freeSpace.sample() });
  const builder = new ImageBuilder({
    ...(signal ? { signal } : {}),
    freeSpace,
    storage,
    source: config.source,
    nixTimeoutSeconds: config.nixTimeoutSeconds,
    layerBudget: config.layerBudget,
    maxConcurrentBuilds: config.maxConcurrentBuilds,
    maxQueuedBuilds: config.maxQueuedBuilds,
    clientBuildsPerMinute: config.clientBuildsPerMinute,
    popularity,
    log,
    metrics,
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
  return { config, storage, builder, metrics, log, tags };
}

export async function startServer(runtime: Runtime, host?: string): Promise<Server> {
  const { config, log } = runtime;
  const uploads = new Uploads(await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-uploads-')));
  await uploads.init();
  const app = createApp({
    uploads,
    ...(config.pushToken ? { pushToken: config.pushToken } : {}),
    storage: runtime.storage,
    builder: runtime.builder,
    tags: runtime.tags,
    metrics: runtime.metrics,
    log,
    source: config.source,
    sourceIsDefault: config.sourceIsDefault,
    ...(config.webDir ? { webDir: config.webDir } : {}),
    onDemand: config.onDemand,
    packagePolicy: compilePackagePolicy({ ...(config.allowedPackages ? { allow: config.allowedPackages } : {}), deny: config.deniedPackages }),
    maxClosureBytes: config.maxClosureBytes,
  });
  const server = createHttpServer(app, { limits: config.connections, metrics: runtime.metrics, log });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (host === undefined) server.listen(config.port, listening);
    else server.listen(config.port, host, listening);
  });
  const address = server.address();
  log.info('nixery is listening', {
    port: typeof address === 'object' && address ? address.port : config.port,
    packages: describeSource(config.source, config.sourceIsDefault),
    storage: runtime.storage.description,
    nixTimeoutSeconds: config.nixTimeoutSeconds,
    layerBudget: config.layerBudget,
    connections: config.connections,
    minFreeSpace: 'bytes' in config.minFreeSpace ? `${config.minFreeSpace.bytes} bytes` : `${config.minFreeSpace.percent}%`,
    pushing: config.pushToken ? 'enabled (token required)' : 'disabled',
    onDemand: config.onDemand ? 'on' : 'off (pushed tags only)',
    builds: {
      concurrent: config.maxConcurrentBuilds,
      maxQueued: config.maxQueuedBuilds,
      perClientPerMinute: config.clientBuildsPerMinute,
      maxClosureBytes: config.maxClosureBytes,
    },
    ...(config.allowedPackages ? { allowedPackages: config.allowedPackages } : {}),
    ...(config.deniedPackages.length ? { deniedPackages: config.deniedPackages } : {}),
  });
  return server;
}
