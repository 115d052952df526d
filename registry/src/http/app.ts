// The HTTP server: the registry API, the index page, health and metrics, one log line per request.
import type { LayerCompression } from '../pack/compress.ts';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RegistryAuth } from '../auth/create.ts';
import { OnDemandNames } from '../auth/on-demand-names.ts';
import type { ImageBuilder } from '../builder/builder.ts';
import type { PackageSource } from '../config/package-source.ts';
import { ALLOW_EVERYTHING, type CompiledPackagePolicy } from '../image/package-policy.ts';
import type { Platform } from '../image/platform.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { errorBody, RegistryError } from './errors.ts';
import { renderIndexPage } from './index-page.ts';
import { RecentErrors } from './recent-errors.ts';
import { registryApi } from './dispatch.ts';
import { PushedTags } from '../push/tag-store.ts';
import type { Uploads } from '../push/uploads.ts';
import { Blobs } from '../service/blobs.ts';
import { Manifests } from '../service/manifests.ts';
import type { PullRecorder } from '../service/pulls.ts';
import { StorageStatus } from '../service/storage-status.ts';
import { TagIndex } from '../service/tags.ts';

export interface AppDeps {
  storage: StorageBackend;
  builder: ImageBuilder;
  metrics: Metrics;
  log: Logger;
  source: PackageSource;
  sourceIsDefault: boolean;
  webDir?: string;
  uploads: Uploads;
  /** Who may do what (auth/create.ts's openAuth); default: the push token alone, anonymous pulls on. */
  auth?: RegistryAuth;
  /** Without `auth`: the administrator's token. */
  pushToken?: string;
  /** False: pushed tags only, no builds (NIXERY_ON_DEMAND); default true. */
  onDemand?: boolean;
  /** Which packages are built on demand; default: all. */
  packagePolicy?: CompiledPackagePolicy;
  /** The tag index (its flushes outlive requests: the caller closes it); default: one with default settings. */
  tags?: TagIndex;
  /** Largest runtime closure built on demand (NIXERY_MAX_CLOSURE_SIZE); default: no limit. */
  maxClosureBytes?: number;
  /** False: `/metrics` and `/storage-status` have a port of their own (NIXERY_METRICS_PORT, http/metrics-server.ts) and are not found here. */
  serveMetrics?: boolean;
  /** What names are built for (NIXERY_PLATFORMS); several make image indexes. Default: linux/amd64. */
  platforms?: readonly Platform[];
  /** How the builder compresses layers (NIXERY_LAYER_COMPRESSION): with zstd, Docker schema 2 clients get gzip variants. Default gzip. */
  layerCompression?: LayerCompression;
  /** When on-demand images were last pulled, for garbage collection (its flushes outlive requests: the caller closes it); default: not recorded. */
  pulls?: PullRecorder;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  const recentErrors = new RecentErrors();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Names like `a//b` must reach the registry's own validation rather than be merged away.
  app.set('strict routing', true);

  app.use((req, res, next) => {
    const start = performance.now();
    res.on('finish', () => observe(deps, req, res, start, 'finish'));
    res.on('close', () => {
      if (!res.writableFinished) observe(deps, req, res, start, 'aborted');
    });
    next();
  });

  app.get('/healthz', async (_req, res) => {
    res.json({ status: 'ok', storage: deps.storage.description });
  });

  if (deps.serveMetrics !== false) {
    app.get('/metrics', async (_req, res) => {
      res.setHeader('Content-Type', deps.metrics.registry.contentType);
      res.end(await deps.metrics.registry.metrics());
    });
    // Beside the metrics, and as open as they are: the storage in use and the last garbage
    // collection (service/storage-status.ts), which the operator copies into the instance status.
    const storageStatus = new StorageStatus(deps.storage);
    app.get('/storage-status', async (_req, res) => {
      res.json(await storageStatus.read());
    });
  }

  const tags = deps.tags ?? new TagIndex(deps.storage, { log: deps.log, onDropped: (reason, n) => deps.metrics.tagsDropped.inc({ reason }, n) });
  const manifests = new Manifests({
    storage: deps.storage,
    builder: deps.builder,
    pushedTags: new PushedTags(deps.storage),
    tags,
    ...(deps.onDemand === undefined ? {} : { onDemand: deps.onDemand }),
    ...(deps.packagePolicy ? { packagePolicy: deps.packagePolicy } : {}),
    ...(deps.maxClosureBytes !== undefined ? { maxClosureBytes: deps.maxClosureBytes } : {}),
    ...(deps.platforms ? { platforms: deps.platforms } : {}),
    ...(deps.pulls ? { pulls: deps.pulls } : {}),
    ...(deps.layerCompression ? { layerCompression: deps.layerCompression } : {}),
    log: deps.log,
  });
  const blobs = new Blobs(deps.storage, deps.uploads);
  const auth = deps.auth ?? RegistryAuth.withPushToken(deps.pushToken, onDemandNames(deps));
  app.use(registryApi({ manifests, blobs, uploads: deps.uploads, tags, metrics: deps.metrics, recentErrors, auth }));

  if (deps.webDir) {
    // Nixery's WEB_DIR: a static website served in place of the built-in index page.
    app.use(express.static(deps.webDir));
  } else {
    app.get('/', (req, res) => {
      res.type('html').send(
        renderIndexPage({
          host: req.headers.host ?? 'localhost',
          source: deps.source,
          sourceIsDefault: deps.sourceIsDefault,
          storage: deps.storage.description,
          // Failed image names may be other users' private repositories.
          errors: auth.anonymousPull ? recentErrors.list() : 'hidden',
        }),
      );
    });
  }

  app.use((req, _res, next) => {
    next(req.path.startsWith('/v2/') ? new RegistryError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`) : undefined);
  });
  app.use((req: Request, res: Response) => {
    res.status(404).type('text').send(`not found: ${req.path}\n`);
  });

  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const registryError =
      error instanceof RegistryError ? error : (clientError(error) ?? new RegistryError('UNKNOWN', 'internal server error; see the registry log'));
    if (registryError.status >= 500) {
      deps.log.error('request failed', { method: req.method, path: req.path, error });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(registryError.status);
    for (const [name, value] of Object.entries(registryError.headers)) res.setHeader(name, value);
    res.setHeader('Content-Type', 'application/json');
    const body = JSON.stringify(errorBody(registryError));
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(req.method === 'HEAD' ? undefined : body);
  });

  return app;
}

/**
 * A request Express or its middleware refused as the client's fault (an http-errors error with a
 * 4xx status it may show, e.g. a path that does not percent-decode): that status, not a 500.
 */
function clientError(error: unknown): RegistryError | undefined {
  const { status, expose, message } = (error ?? {}) as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof status !== 'number' || status < 400 || status > 499 || expose !== true) return undefined;
  return new RegistryError('UNSUPPORTED', typeof message === 'string' ? message : 'bad request', undefined, status);
}

function observe(deps: AppDeps, req: Request, res: Response, start: number, outcome: 'finish' | 'aborted'): void {
  const seconds = (performance.now() - start) / 1000;
  const route = (res.locals.route as string | undefined) ?? routeLabel(req.path);
  const status = outcome === 'aborted' ? 'aborted' : String(res.statusCode);
  deps.metrics.httpRequests.inc({ route, method: req.method, status });
  deps.metrics.httpDuration.observe({ route }, seconds);
  deps.log.info('request', {
    method: req.method,
    path: req.originalUrl,
    status,
    durationMs: Math.round(seconds * 1000),
    // What was sent when the route counted it (less than Content-Length after an abort).
    bytes: (res.locals.bodyBytes as number | undefined) ?? Number(res.getHeader('Content-Length') ?? 0),
    userAgent: req.headers['user-agent'],
    // Who, never with what: the credential stays out of every log line.
    identity: (res.locals.identity as string | undefined) ?? 'anonymous',
    ...(res.locals.credential ? { credential: res.locals.credential as string } : {}),
  });
}

/** The names on-demand builds serve (pull-only for all but the administrator), as the app's builder resolves them. */
export function onDemandNames(deps: Pick<AppDeps, 'builder' | 'onDemand' | 'packagePolicy'>): OnDemandNames {
  return new OnDemandNames({ onDemand: deps.onDemand ?? true, packagePolicy: deps.packagePolicy ?? ALLOW_EVERYTHING, resolver: deps.builder });
}

/** Bounded label values: never a raw path, which would grow the metric without limit. */
function routeLabel(path: string): string {
  if (path === '/v2/' || path === '/v2') return '/v2/';
  if (path.startsWith('/v2/')) return '/v2/other';
  if (path === '/' || path === '/healthz' || path === '/metrics' || path === '/storage-status') return path;
  return 'other';
}
