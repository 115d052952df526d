// `/metrics` on a port of its own (NIXERY_METRICS_PORT), as distribution's debug address: the
// registry's port may face the world (and speak TLS) while Prometheus scrapes this one from
// inside the cluster. Plain HTTP, two routes (and `/storage-status`, as open as the metrics), small
// bounds: a scraper sends no bodies.
import http, { type Server } from 'node:http';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { StorageStatus } from '../service/storage-status.ts';

const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Scrapers, not clients: a handful at once is plenty. */
const MAX_CONNECTIONS = 32;

/** `/metrics`, and with `storageStatus` `/storage-status` (the app serves them otherwise). */
export function createMetricsServer(metrics: Pick<Metrics, 'registry'>, log: Logger, storageStatus?: Pick<StorageStatus, 'read'>): Server {
  const server = http.createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://metrics').pathname;
    const body =
      path === '/metrics'
        ? () => metrics.registry.metrics().then((text) => ({ text, type: metrics.registry.contentType }))
        : path === '/storage-status' && storageStatus
          ? () => storageStatus.read().then((view) => ({ text: JSON.stringify(view), type: 'application/json; charset=utf-8' }))
          : undefined;
    if (!body) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${path}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    body().then(
      ({ text, type }) => {
        res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        log.error(`answering ${path} failed`, { error });
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`answering ${path} failed; see the registry log\n`);
      },
    );
  });
  server.maxConnections = MAX_CONNECTIONS;
  return server;
}
