// The HTTP side of the proxy subresources, as apimachinery's UpgradeAwareHandler with its
// rewriting proxy Transport: bodies stream both ways (never buffered), the query goes along as
// received, hop-by-hop headers and the client's Authorization (kube-apiserver drops it once it has
// authenticated the request) stay behind, X-Forwarded-For and X-Forwarded-Uri are added, CORS
// headers of the answer are dropped and a Location that points back at the backend (or at this
// server) gets the proxy prefix. Backends are not authenticated (https is not verified), as
// kube-apiserver's proxy transport does not verify them either.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { serviceUnavailable } from './errors.ts';

/** Headers that belong to one connection (Go's httputil.ReverseProxy list), plus the client's credentials. */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const CORS = new Set(['access-control-allow-credentials', 'access-control-allow-headers', 'access-control-allow-methods', 'access-control-allow-origin']);

export interface ProxyTarget {
  /** scheme://host:port of the backend */
  location: URL;
  /** the decoded path to request there ('' when the request named none) */
  path: string;
}

export interface ProxyRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** the decoded path of the request to this server (what Go calls req.URL.Path) */
  requestPath: string;
  /** the query as received, without `?` */
  rawQuery: string;
  /** called with the status of a failure to reach the backend, before anything was sent */
  fail: (error: Error) => void;
}

/** Streams one request to the backend and its answer back; resolves when both are done. */
export function proxyHttp(target: ProxyTarget, p: ProxyRequest): Promise<void> {
  const { req, res, requestPath, rawQuery } = p;
  let path = target.path;
  if (!path.endsWith('/') && requestPath.endsWith('/')) path += '/';
  // Upstream's answer to issue 4958: `.../proxy` without a path is redirected to `.../proxy/`.
  if (path === '' && (req.method === 'GET' || req.method === 'HEAD')) {
    req.resume();
    res.writeHead(301, { Location: `${requestPath}/${rawQuery ? `?${rawQuery}` : ''}`, 'Content-Length': '0' });
    res.end();
    return Promise.resolve();
  }
  let suffix = target.path;
  if (requestPath.endsWith('/') && !suffix.endsWith('/')) suffix += '/';
  const pathPrepend = requestPath.endsWith(suffix) ? requestPath.slice(0, requestPath.length - suffix.length) : requestPath;

  const headers = forwardedHeaders(req, joinPath(pathPrepend, path, path.endsWith('/')));
  const secure = target.location.protocol === 'https:';
  const options: https.RequestOptions = {
    protocol: target.location.protocol,
    hostname: target.location.hostname.replace(/^\[|\]$/g, ''),
    port: Number(target.location.port),
    method: req.method ?? 'GET',
    path: `${escapePath(path || '/')}${rawQuery ? `?${rawQuery}` : ''}`,
    headers,
    // a fresh connection each time: pods come and go, and a pooled socket to a dead one fails late
    agent: false,
    ...(secure ? { rejectUnauthorized: false } : {}),
  };

  return new Promise<void>((resolve) => {
    const upstream = (secure ? https : http).request(options, (answer) => {
      for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) {
        const name = answer.rawHeaders[i] ?? '';
        const lower = name.toLowerCase();
        if (HOP_BY_HOP.has(lower) || CORS.has(lower) || connectionTokens(answer.headers.connection).has(lower)) continue;
        let value = answer.rawHeaders[i + 1] ?? '';
        if (lower === 'location') value = rewriteLocation(value, target.location.host, req.headers.host ?? '', pathPrepend);
        res.appendHeader(name, value);
      }
      res.writeHead(answer.statusCode ?? 502);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      res.on('close', resolve);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) p.fail(serviceUnavailable(`error trying to reach service: ${dialError(error, target.location)}`));
      else res.destroy();
      resolve();
    });
    // The client went away: so does the backend request (a watch-like stream would run forever).
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
}

/** Request headers for the backend, in their received order and spelling. */
function forwardedHeaders(req: IncomingMessage, forwardedUri: string): string[] {
  const dropped = connectionTokens(req.headers.connection);
  const out: string[] = [];
  const priorForwardedFor: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    const value = req.rawHeaders[i + 1] ?? '';
    if (HOP_BY_HOP.has(lower) || dropped.has(lower) || lower === 'authorization' || lower === 'x-forwarded-uri') continue;
    if (lower === 'x-forwarded-for') {
      priorForwardedFor.push(value);
      continue;
    }
    out.push(name, value);
  }
  const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  out.push('X-Forwarded-For', [...priorForwardedFor, client].join(', '));
  out.push('X-Forwarded-Uri', forwardedUri);
  return out;
}

function connectionTokens(value: string | undefined): Set<string> {
  return new Set((value ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean));
}

/** Go's net error wording for the common failures, so messages read as a real cluster's do. */
function dialError(error: NodeJS.ErrnoException, location: URL): string {
  const address = location.host;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${address}: connect: connection refused`;
    case 'ETIMEDOUT':
      return `dial tcp ${address}: i/o timeout`;
    case 'EHOSTUNREACH':
      return `dial tcp ${address}: connect: no route to host`;
    case 'ECONNRESET':
      return `read tcp ${address}: read: connection reset by peer`;
    default:
      return error.message;
  }
}

/**
 * The backend path of a proxy request, from its decoded path: what follows the first
 * `prefixSegments` segments (…/services/id/proxy), cleaned as path.Join does, trailing slash kept.
 */
export function proxySubpath(requestPath: string, prefixSegments: number): string {
  const trimmed = requestPath.replace(/^\/+|\/+$/g, '');
  const rest = (trimmed === '' ? [] : trimmed.split('/')).slice(prefixSegments).join('/');
  const trailing = requestPath.endsWith('/');
  if (rest === '') return trailing ? '/' : '';
  return joinPath('/', rest, trailing || rest.endsWith('/'));
}

/** path.Join (which cleans) plus the trailing slash upstream keeps. */
function joinPath(prefix: string, path: string, trailingSlash: boolean): string {
  let joined = posix.join(prefix, path);
  if (joined.length > 1 && joined.endsWith('/')) joined = joined.slice(0, -1);
  if (joined === '.') joined = '';
  return trailingSlash && !joined.endsWith('/') ? `${joined}/` : joined;
}

/** Percent-encodes a decoded path as Go's url.URL does (encodePath). */
export function escapePath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~$&+,/:;=@]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The proxy Transport's rewriteURL for a Location header. Its Scheme and Host are empty on
 * kube-apiserver (they come from the incoming request's URL, which carries neither), so a
 * Location for the backend's own address or without a host becomes an absolute path under the
 * proxy prefix, one naming this server keeps its scheme and host and gets the prefix, and a
 * relative Location or one for another host stays as it is.
 */
export function rewriteLocation(location: string, backendHost: string, requestHost: string, pathPrepend: string): string {
  const m = /^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(location);
  if (!m) return location;
  const [, scheme, authority, rawPath = '', query, fragment] = m;
  const host = authority === undefined ? '' : authority.slice(authority.lastIndexOf('@') + 1);
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return location;
  }
  const differentHost = host !== '' && host !== backendHost && host !== requestHost;
  if (differentHost || !path.startsWith('/')) return location;
  const origin = host !== '' && host === requestHost ? `${scheme ? `${scheme}:` : ''}//${authority ?? ''}` : '';
  const tail = `${query !== undefined ? `?${query}` : ''}${fragment ? `#${fragment}` : ''}`;
  if (path.startsWith(pathPrepend)) return `${origin}${rawPath}${tail}`;
  return `${origin}${escapePath(joinPath(pathPrepend, path, path.endsWith('/')))}${tail}`;
}
