// The HTTP server with its limits on connections (NIXERY_HEADERS_TIMEOUT and the rest,
// config.ts's ConnectionLimits), so that no client holds the registry's sockets, files and
// buffers for longer than it keeps up its end:
// - the request line and headers must arrive within the headers timeout, the whole request
//   (headers and body) within the receive timeout; Node's server enforces both and answers 408;
// - a response whose bytes the client stops taking is cut after the send-stall timeout (the
//   watch below), while a slow download that moves goes on for as long as it moves;
// - an idle keep-alive connection is closed after the keep-alive timeout;
// - connections beyond the cap are closed as they arrive;
// - a request refused before it reached the app (a timeout's 408, a malformed request's 400) is
//   answered as Node answers it, but closed gracefully: the answer, a FIN, and whatever the client
//   still sends read and dropped for a moment (`closeRefused`). Node's own close, with bytes of a
//   trickling client unread, makes the kernel reset the connection — and a reset can discard the
//   answer on the client's side before it was read.
// Over TLS the same holds: the TLS handshake must end within the headers timeout, and the cap,
// the count and the send-stall watch apply to the TCP sockets beneath the TLS ones (the kernel
// takes encrypted bytes from those).
// Nothing bounds the time a request waits for its answer: a manifest waits for its build, which
// NIX_TIMEOUT bounds (the receive timeout ends once the request has arrived, and a connection
// with nothing to send is not stalled).
import http, { type RequestListener, type Server } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectionLimits } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';

export interface ConnectionDeps {
  limits: ConnectionLimits;
  metrics: Pick<Metrics, 'openConnections' | 'connectionsClosed'>;
  log: Logger;
}

export function createHttpServer(handler: RequestListener, deps: ConnectionDeps): Server {
  return limitConnections(http.createServer(serverOptions(deps.limits), handler), deps);
}

/** The serving certificate and key, PEM. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
}

/** The same server over TLS; `setSecureContext` on it puts a renewed certificate into service. */
export function createHttpsServer(handler: RequestListener, credentials: TlsCredentials, deps: ConnectionDeps): https.Server {
  const server = https.createServer(
    {
      ...serverOptions(deps.limits),
      cert: credentials.cert,
      key: credentials.key,
      // A handshake is part of what must arrive before the headers: a client that opens a
      // connection and never finishes it is let go as one that never sends its headers.
      handshakeTimeout: deps.limits.headersTimeoutSeconds * 1000,
    },
    handler,
  );
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    // A client that does not trust the certificate ends here, as does a port scan: not news.
    deps.log.debug('TLS handshake failed', { remoteAddress: socket.remoteAddress, error: error.message });
  });
  return limitConnections(server, deps);
}

function serverOptions(limits: ConnectionLimits): http.ServerOptions {
  const headersTimeout = limits.headersTimeoutSeconds * 1000;
  return {
    headersTimeout,
    requestTimeout: limits.receiveTimeoutSeconds * 1000,
    keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    // How often Node looks for requests past their timeouts (its default, 30 s, would let a
    // header trickle run far past a timeout of a few seconds).
    connectionsCheckingInterval: Math.min(1_000, headersTimeout / 4),
  };
}

/**
 * The cap, the count and the send-stall watch, on the sockets the server accepts: for HTTPS the
 * TCP sockets beneath the TLS ones, whose write queue is where encrypted bytes wait for the
 * kernel; destroying one tears down the TLS socket and the response on it.
 */
function limitConnections<S extends Server | https.Server>(server: S, deps: ConnectionDeps): S {
  const { limits, metrics, log } = deps;
  server.maxConnections = limits.maxConnections;
  let lastDropLogged = 0;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics.connectionsClosed.inc({ reason: 'max_connections' });
    // One line a minute at most: a flood must not become a flood of log lines.
    const now = Date.now();
    if (now - lastDropLogged < 60_000) return;
    lastDropLogged = now;
    log.warn('refusing connections: the connection limit is reached', { maxConnections: limits.maxConnections, remoteAddress: data?.remoteAddress });
  });
  const watch = new SendStallWatch(limits.sendStallTimeoutSeconds * 1000, (socket, stalledMs) => {
    metrics.connectionsClosed.inc({ reason: 'send_stall' });
    log.debug('closing a connection whose client takes no bytes', {
      remoteAddress: socket.remoteAddress,
      stalledSeconds: Math.round(stalledMs / 1000),
      unsentBytes: socket.writableLength + libuvQueued(socket),
    });
    socket.destroy();
  });
  server.on('connection', (socket: Socket) => {
    metrics.openConnections.inc();
    watch.add(socket);
    socket.once('close', () => {
      metrics.openConnections.dec();
      watch.delete(socket);
    });
  });
  server.once('close', () => watch.stop());
  server.on('clientError', closeRefused);
  return server;
}

/** How long a refused connection's late bytes are read and dropped before it is closed regardless. */
export const REFUSED_LINGER_MS = 2_000;

/** Node's answers to the client errors it names (_http_server.js); anything else is a 400. */
const REFUSAL_STATUS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
};

/** The server's `clientError`: Node's answer, then a lingering close (see the header). */
export function closeRefused(error: NodeJS.ErrnoException, socket: Socket | TLSSocket): void {
  // Only HTTP's own refusals are answered (a TLS handshake that failed or timed out has no HTTP to
  // speak); a response already under way cannot be followed by another one.
  const answerable = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code?.startsWith('HPE_') === true;
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!answerable || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.on('error', () => {});
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  socket.end(`HTTP/1.1 ${REFUSAL_STATUS[error.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
  socket.resume();
}

interface Progress {
  /** Bytes of writes not yet complete (the socket stream's count). */
  writable: number;
  /** Of those, the bytes libuv has not yet handed to the kernel. */
  queued: number;
  /** The last time a socket had nothing to send or its numbers moved. */
  since: number;
}

/**
 * Cuts connections whose responses make no progress: bytes are waiting to be sent and, for the
 * timeout, the kernel has taken none of them (the client reads nothing) and none were added. One
 * timer for all connections looks a few times per timeout, so a stalled connection is closed
 * within the timeout plus a quarter of it (at most one second).
 */
export class SendStallWatch {
  private readonly sockets = new Map<Socket, Progress>();
  private readonly timer: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly onStall: (socket: Socket, stalledMs: number) => void;
  private readonly now: () => number;

  constructor(timeoutMs: number, onStall: (socket: Socket, stalledMs: number) => void, now: () => number = () => performance.now()) {
    this.timeoutMs = timeoutMs;
    this.onStall = onStall;
    this.now = now;
    this.timer = setInterval(() => this.sweep(), Math.max(50, Math.min(1_000, timeoutMs / 4)));
    this.timer.unref();
  }

  add(socket: Socket): void {
    this.sockets.set(socket, { writable: 0, queued: 0, since: this.now() });
  }

  delete(socket: Socket): void {
    this.sockets.delete(socket);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sockets.clear();
  }

  sweep(): void {
    const now = this.now();
    for (const [socket, last] of this.sockets) {
      const writable = socket.writableLength;
      const queued = libuvQueued(socket);
      if (writable + queued === 0 || writable !== last.writable || queued !== last.queued) {
        last.writable = writable;
        last.queued = queued;
        last.since = now;
      } else if (now - last.since >= this.timeoutMs) {
        this.sockets.delete(socket);
        this.onStall(socket, now - last.since);
      }
    }
  }
}

/**
 * Bytes libuv still holds for the kernel: it hands them over as the client's window opens, so
 * this shrinks while a download moves even when no write of the response completes (a slow
 * client takes a 1 MiB chunk over many seconds). Node keeps it on the socket's handle.
 */
function libuvQueued(socket: Socket): number {
  const size = (socket as unknown as { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize;
  return typeof size === 'number' ? size : 0;
}
