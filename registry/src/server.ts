// Serves a runtime (runtime.ts: configuration, storage, the builder) over the HTTP app.
import type { RequestListener, Server } from 'node:http';
import { Uploads } from './push/uploads.ts';
import type { Config } from './config/config.ts';
import { openAuth } from './auth/create.ts';
import { createApp, onDemandNames } from './http/app.ts';
import { createHttpServer, createHttpsServer } from './http/connections.ts';
import { createMetricsServer } from './http/metrics-server.ts';
import { TlsFileWatcher } from './http/tls-files.ts';
import { readTlsPairSync, type CertificateSummary } from './config/tls-pair.ts';
import { compilePackagePolicy } from './image/package-policy.ts';
import { describeSource } from './http/index-page.ts';
import type { Logger } from './log/logger.ts';
import type { Metrics } from './metrics/metrics.ts';
import type { Runtime } from './runtime.ts';
import { GarbageCollector, PeriodicGc, retention } from './service/gc.ts';
import { Purger } from './service/purge.ts';
import { NixStoreCollector, PeriodicNixStoreGc } from './nix/store-gc.ts';
import { StorageStatus } from './service/storage-status.ts';
import type { StorageBackend } from './storage/backend.ts';
import { setSharedPoolPurpose } from './pack/compression-pool.ts';
import { setProgramNice } from './nix/run.ts';

/** Nice value of the programs a server's builds run (Nix, git): background work beside serving. */
const SERVE_PROGRAM_NICE = 10;

export async function startServer(runtime: Runtime, host?: string): Promise<Server> {
  const { config, log } = runtime;
  // Builds pack with a core left to the event loop, which serves while they run, on compression
  // threads below it (pack/compression-threads.ts); Nix and git run below it too.
  setSharedPoolPurpose('serve');
  setProgramNice(SERVE_PROGRAM_NICE);
  // Sessions live in the shared storage: any replica on it continues any of them.
  const uploads = new Uploads(runtime.storage.uploads);
  const packagePolicy = compilePackagePolicy({ ...(config.allowedPackages ? { allow: config.allowedPackages } : {}), deny: config.deniedPackages });
  const auth = await openAuth(
    { ...config.auth, ...(config.pushToken ? { pushToken: config.pushToken } : {}), clientAuthChecksPerMinute: config.clientAuthChecksPerMinute },
    { log, onDemandNames: onDemandNames({ builder: runtime.builder, onDemand: config.onDemand, packagePolicy }) },
  );
  const app = createApp({
    uploads,
    auth,
    storage: runtime.storage,
    builder: runtime.builder,
    tags: runtime.tags,
    pulls: runtime.pulls,
    metrics: runtime.metrics,
    log,
    source: config.source,
    sourceIsDefault: config.sourceIsDefault,
    ...(config.webDir ? { webDir: config.webDir } : {}),
    onDemand: config.onDemand,
    packagePolicy,
    maxClosureBytes: config.maxClosureBytes,
    ...(config.metricsPort !== undefined ? { serveMetrics: false } : {}),
    platforms: config.platforms,
    layerCompression: config.layerCompression,
  });
  const { server, certificate } = createServer(app, config, runtime.metrics, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (host === undefined) server.listen(config.port, listening);
    else server.listen(config.port, host, listening);
  });
  if (config.metricsPort !== undefined) await serveMetrics(server, config.metricsPort, runtime.metrics, log, runtime.storage);
  const purger = new Purger({
    uploads,
    storage: runtime.storage,
    metrics: runtime.metrics,
    log: log.child({ component: 'purge' }),
    uploadSessionTtlMs: config.purge.uploadSessionTtlSeconds * 1000,
    stagingTtlMs: config.purge.stagingTtlSeconds * 1000,
  })
    .start()
    .stopWith(server);
  // Replicas sharing the storage take turns through the GC lease (service/gc-lease.ts).
  if (config.gc.intervalSeconds > 0) {
    const gcLog = log.child({ component: 'gc' });
    const { usage } = runtime;
    const gc = new PeriodicGc({
      collector: new GarbageCollector({
        storage: runtime.storage,
        graceMs: config.gc.graceSeconds * 1000,
        ...retention(config),
        ...(config.storageQuotaBytes !== undefined ? { quotaBytes: config.storageQuotaBytes } : {}),
        log: gcLog,
      }),
      metrics: runtime.metrics,
      log: gcLog,
      intervalMs: config.gc.intervalSeconds * 1000,
      leases: runtime.leases,
      ...(usage ? { usage, followUpMs: config.gc.graceSeconds * 1000, storage: runtime.storage } : {}),
    })
      .start()
      .stopWith(server);
    if (usage) {
      // The first run measures the storage (until then no build is refused); later ones run when writes take the estimate over.
      usage.onOver = () => void gc.run();
      void gc.run();
    }
  }
  if (runtime.nixStore) {
    const nixGcLog = log.child({ component: 'nix-gc' });
    new PeriodicNixStoreGc({
      collector: new NixStoreCollector({
        gate: runtime.nixStore.gate,
        timeoutSeconds: config.nixTimeoutSeconds,
        maxFreedBytes: config.nixGc.maxFreedBytes,
        log: nixGcLog,
        beforeCollect: () => runtime.builder.forgetResolutions(),
      }),
      metrics: runtime.metrics,
      log: nixGcLog,
      intervalMs: config.nixGc.intervalSeconds * 1000,
    })
      .start()
      .stopWith(server);
  }
  const address = server.address();
  log.info('nixery is listening', {
    port: typeof address === 'object' && address ? address.port : config.port,
    packages: describeSource(config.source, config.sourceIsDefault),
    storage: runtime.storage.description,
    nixTimeoutSeconds: config.nixTimeoutSeconds,
    platforms: config.platforms,
    layerCompression: config.layerCompression,
    purge: { ...config.purge, intervalSeconds: purger.intervalMs / 1000 },
    gc: config.gc.intervalSeconds > 0 ? config.gc : 'off (nixery gc only)',
    storageQuotaBytes: config.storageQuotaBytes ?? 'none',
    nixStoreGc: config.nixGc.intervalSeconds > 0 ? config.nixGc : 'off',
    layerBudget: config.layerBudget,
    connections: config.connections,
    tls: config.tls ? { ...config.tls, certificate } : 'off',
    metricsPort: config.metricsPort ?? "the registry's",
    minFreeSpace: 'bytes' in config.minFreeSpace ? `${config.minFreeSpace.bytes} bytes` : `${config.minFreeSpace.percent}%`,
    pushing: config.pushToken || config.auth.policyFile ? 'enabled (credentials required)' : 'disabled',
    auth: {
      administrator: config.pushToken !== undefined,
      anonymousPull: config.auth.anonymousPull,
      htpasswdFiles: config.auth.htpasswdFiles,
      policyFile: config.auth.policyFile ?? null,
      sharedTokenKey: config.auth.tokenKeyFile !== undefined,
      kubernetesTokens: config.auth.kubernetesTokens ? { audience: config.auth.kubernetesTokens.audience, verification: config.auth.kubernetesTokens.verification } : null,
      checksPerClientPerMinute: config.clientAuthChecksPerMinute,
    },
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

/** Plain HTTP, or HTTPS with the configured pair, which is re-read as its files change. */
function createServer(app: RequestListener, config: Config, metrics: Metrics, log: Logger): { server: Server; certificate?: CertificateSummary } {
  const deps = { limits: config.connections, metrics, log };
  if (!config.tls) return { server: createHttpServer(app, deps) };
  const pair = readTlsPairSync(config.tls);
  const server = createHttpsServer(app, pair, deps);
  const watcher = new TlsFileWatcher({ files: config.tls, current: pair, apply: (next) => server.setSecureContext({ cert: next.cert, key: next.key }), log }).start();
  server.once('close', () => watcher.stop());
  return { server, certificate: pair.summary };
}

/** `/metrics` and `/storage-status` on their own port, on every interface; it closes when the registry's server does. */
async function serveMetrics(registry: Server, port: number, metrics: Metrics, log: Logger, storage: StorageBackend): Promise<void> {
  const server = createMetricsServer(metrics, log, new StorageStatus(storage));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => {
      server.off('error', reject);
      resolve();
    });
  });
  registry.once('close', () => {
    server.close();
    server.closeAllConnections();
  });
}
