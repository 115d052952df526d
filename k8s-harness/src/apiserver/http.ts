// HTTP: authenticates and logs each request with its authorization attributes (request-info.ts),
// routes it to discovery, OpenAPI, resource operations and watches (watch.ts); bodies, content
// negotiation and Status errors are wire.ts's.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { deleteCollection, deleteObject } from './deletion.ts';
import { obj } from './json.ts';
import { bindPod, getScale, patchScale, updateScale } from './subresources.ts';
import { aggregatedDiscovery, aggregatedVersionAccepted, apiGroup, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.ts';
import { auditIdOf, auditRequest, recordRequestObject } from './audit.ts';
import type { AuditLog } from './audit.ts';
import { authenticate } from './auth.ts';
import { badRequest, internal, methodNotAllowed, resourceNotFound, unauthorized } from './errors.ts';
import { logTarget, proxyLogs } from './logs.ts';
import { DISCOVERY_CACHE_CONTROL, JWKS_PATH, jwks, OPENID_CONFIGURATION_PATH, openidConfiguration } from './oidc.ts';
import { openapiV2, openapiV3GroupVersion, openapiV3Root } from './openapi.ts';
import { proxyHttp, proxySubpath } from './proxy-handler.ts';
import { apiVersionOf } from './resources.ts';
import type { ResourceInfo } from './resources.ts';
import { createToken } from './serviceaccounts.ts';
import { reviewToken } from './tokenreview.ts';
import { serviceLocation } from './service-location.ts';
import { toTable } from './table.ts';
import { ISSUER, type TokenSigner } from './tokens.ts';
import { longRunning, parseResourcePath, PROXY_METHODS, resourceAttributes, resourceVerb, type NonResourceVerb, type RequestLogEntry, type ResourcePath, type Verb } from './request-info.ts';
import { decodeBody, deleteOptions, negotiate, patchTypeOf, readBody, send, sendError, tryDecodeBody, writeOptions } from './wire.ts';
import { watch, type WatchOptions } from './watch.ts';

export type { NonResourceVerb, RequestLogEntry, Verb } from './request-info.ts';

export interface HttpOptions extends WatchOptions {
  signer: TokenSigner;
  requestLog: RequestLogEntry[];
  serverAddress: () => string;
  /** kube-apiserver's --audit-log-path */
  auditLog?: AuditLog;
}

export function createHandler(options: HttpOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const lookup = (storageKey: string, namespace: string, name: string) => options.api.store.get(storageKey, namespace, name);
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    const resourcePath = parseResourcePath(url.pathname);
    const verb = resourcePath ? resourceVerb(method, resourcePath, url.searchParams) : (method.toLowerCase() as NonResourceVerb);
    const fieldManager = url.searchParams.get('fieldManager');
    const user = authenticate(req.headers.authorization, options.signer, lookup);
    const auditID = auditIdOf(req);
    res.setHeader('Audit-Id', auditID);
    const attributes = resourceAttributes(resourcePath, verb, url.searchParams);
    if (options.auditLog) {
      auditRequest(options.auditLog, req, res, {
        auditID,
        verb,
        user: user ? { username: user.username, groups: user.groups } : {},
        ...(attributes.resourceRequest
          ? { objectRef: { resource: attributes.resource, namespace: attributes.namespace, name: attributes.name, apiGroup: attributes.apiGroup, apiVersion: attributes.apiVersion, subresource: attributes.subresource } }
          : {}),
        longRunning: longRunning(resourcePath, verb),
        ...(user ? {} : { failedAuthentication: true }),
      });
    }
    const entry: RequestLogEntry = {
      method,
      path: url.pathname,
      verb,
      ...(fieldManager ? { fieldManager } : {}),
      user: user?.username ?? '',
      groups: user?.groups ?? [],
      ...attributes,
    };
    options.requestLog.push(entry);
    if (!user) {
      req.resume();
      sendError(res, unauthorized());
      return;
    }
    handle(options, req, res, url, method, resourcePath, entry).catch((err: unknown) => sendError(res, err));
  };
}

async function handle(options: HttpOptions, req: IncomingMessage, res: ServerResponse, url: URL, method: string, rp: ResourcePath | undefined, entry: RequestLogEntry): Promise<void> {
  const { api } = options;
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (!rp) {
    if (method !== 'GET') throw methodNotAllowed('');
    return handleNonResource(options, req, res, path);
  }
  const verb = resourceVerb(method, rp, url.searchParams) as Verb;
  const found = api.registry.find(rp.group, rp.version, rp.resource);
  if (!found) throw resourceNotFound();
  const r: ResourceInfo = found;
  if (!r.namespaced && rp.namespace !== undefined) throw resourceNotFound();
  const namespace = r.namespaced ? rp.namespace : '';
  const query = url.searchParams;
  if (r.virtual) return handleVirtual(options, req, res, r, rp, verb);
  // Proxied bodies stream through: they are not the API's to read (and may be large).
  if (rp.subresource === 'proxy' && r.specialSubresources.includes('proxy')) return proxyService(options, req, res, url, method, rp, namespace);
  const accept = negotiate(req.headers.accept);
  const body = method === 'GET' || method === 'HEAD' ? undefined : await readBody(req);
  const contentType = req.headers['content-type'] ?? '';
  if (body && (method === 'POST' || method === 'PUT')) recordRequestObject(res, tryDecodeBody(body, contentType));

  if (rp.subresource !== undefined) return handleSubresource(options, req, res, r, rp, verb, namespace ?? '', body, contentType, query);

  switch (verb) {
    case 'get': {
      const o = api.get(r, namespace ?? '', rp.name ?? '');
      if (accept.table) return send(res, 200, toTable(r, [o], { resourceVersion: String(obj(o.metadata).resourceVersion) }, query.get('includeObject') ?? 'Metadata', Date.now()));
      if (accept.partial) return send(res, 200, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata });
      return send(res, 200, o);
    }
    case 'list': {
      const limit = query.get('limit');
      const result = api.list(r, namespace, {
        ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector') as string } : {}),
        ...(query.get('fieldSelector') ? { fieldSelector: query.get('fieldSelector') as string } : {}),
        ...(limit ? { limit: Number(limit) } : {}),
        ...(query.get('continue') ? { continue: query.get('continue') as string } : {}),
      });
      if (accept.table) return send(res, 200, toTable(r, result.items, result.metadata, query.get('includeObject') ?? 'Metadata', Date.now()));
      if (accept.partial) {
        return send(res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: result.metadata, items: result.items.map((i) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: i.metadata })) });
      }
      return send(res, 200, { kind: r.listKind, apiVersion: apiVersionOf(r), metadata: result.metadata, items: result.items });
    }
    case 'watch':
      return watch(options, req, res, r, namespace, rp.name, query, accept.table);
    case 'create': {
      if (namespace === undefined) throw methodNotAllowed('create needs a namespace');
      if (rp.name !== undefined) throw methodNotAllowed('POST to a named object');
      const result = api.create(r, namespace, decodeBody(body ?? Buffer.alloc(0), contentType), writeOptions(query, req));
      return send(res, result.status, result.object, 'application/json', result.warnings);
    }
    case 'update': {
      if (rp.name === undefined || namespace === undefined) throw methodNotAllowed('PUT to a collection');
      const result = api.update(r, namespace, rp.name, decodeBody(body ?? Buffer.alloc(0), contentType), writeOptions(query, req));
      if (result.status === 201) entry.created = true;
      return send(res, result.status, result.object, 'application/json', result.warnings);
    }
    case 'patch': {
      if (rp.name === undefined || namespace === undefined) throw methodNotAllowed('PATCH to a collection');
      const type = patchTypeOf(contentType);
      const decoded = decodeBody(body ?? Buffer.alloc(0), type === 'apply' ? 'application/yaml' : 'application/json');
      const result = api.patch(r, namespace, rp.name, type, decoded, writeOptions(query, req), undefined, query.get('force') === 'true');
      if (result.status === 201) entry.created = true;
      return send(res, result.status, result.object, 'application/json', result.warnings);
    }
    case 'delete': {
      if (rp.name === undefined || namespace === undefined) throw methodNotAllowed('');
      const decoded = body && body.length > 0 ? decodeBody(body, contentType || 'application/json') : undefined;
      const result = deleteObject(api, r, namespace, rp.name, deleteOptions(query, decoded));
      return send(res, result.status, result.object);
    }
    case 'deletecollection': {
      const decoded = body && body.length > 0 ? decodeBody(body, contentType || 'application/json') : undefined;
      const out = deleteCollection(api, r, namespace, {
        ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector') as string } : {}),
        ...(query.get('fieldSelector') ? { fieldSelector: query.get('fieldSelector') as string } : {}),
      }, deleteOptions(query, decoded));
      return send(res, 200, out);
    }
  }
}

/** A create-only resource (TokenReview): answered from the request, never stored; other verbs are 405. */
async function handleVirtual(options: HttpOptions, req: IncomingMessage, res: ServerResponse, r: ResourceInfo, rp: ResourcePath, verb: Verb): Promise<void> {
  if (verb !== 'create' || rp.name !== undefined || rp.subresource !== undefined) {
    req.resume();
    throw methodNotAllowed('');
  }
  const body = await readBody(req);
  const contentType = req.headers['content-type'] ?? '';
  const decoded = decodeBody(body, contentType);
  recordRequestObject(res, decoded);
  const lookup = (storageKey: string, namespace: string, name: string) => options.api.store.get(storageKey, namespace, name);
  switch (r.kind) {
    case 'TokenReview':
      return send(res, 201, reviewToken(decoded, { signer: options.signer, lookup }));
    default:
      throw resourceNotFound();
  }
}

async function handleSubresource(options: HttpOptions, req: IncomingMessage, res: ServerResponse, r: ResourceInfo, rp: ResourcePath, verb: Verb, namespace: string, body: Buffer | undefined, contentType: string, query: URLSearchParams): Promise<void> {
  const { api } = options;
  const name = rp.name ?? '';
  const sub = rp.subresource ?? '';
  if (sub === 'status' && r.hasStatus) {
    switch (verb) {
      case 'get':
        return send(res, 200, api.get(r, namespace, name));
      case 'update': {
        const result = api.update(r, namespace, name, decodeBody(body ?? Buffer.alloc(0), contentType), writeOptions(query, req), 'status');
        return send(res, result.status, result.object, 'application/json', result.warnings);
      }
      case 'patch': {
        const type = patchTypeOf(contentType);
        const decoded = decodeBody(body ?? Buffer.alloc(0), type === 'apply' ? 'application/yaml' : 'application/json');
        const result = api.patch(r, namespace, name, type, decoded, writeOptions(query, req), 'status', query.get('force') === 'true');
        return send(res, result.status, result.object, 'application/json', result.warnings);
      }
      default:
        throw methodNotAllowed(`${verb} on status`);
    }
  }
  if (sub === 'scale' && r.scale) {
    switch (verb) {
      case 'get':
        return send(res, 200, getScale(api, r, namespace, name));
      case 'update': {
        const result = updateScale(api, r, namespace, name, obj(decodeBody(body ?? Buffer.alloc(0), contentType)), writeOptions(query, req));
        return send(res, result.status, result.object);
      }
      case 'patch': {
        const type = patchTypeOf(contentType);
        const decoded = decodeBody(body ?? Buffer.alloc(0), type === 'apply' ? 'application/yaml' : 'application/json');
        const result = patchScale(api, r, namespace, name, type, decoded, writeOptions(query, req));
        return send(res, result.status, result.object);
      }
      default:
        throw methodNotAllowed(`${verb} on scale`);
    }
  }
  if (sub === 'log' && r.specialSubresources.includes('log') && verb === 'get') {
    const pod = api.get(r, namespace, name);
    const nodeName = obj(pod.spec).nodeName;
    const node = typeof nodeName === 'string' ? api.store.get('nodes', '', nodeName) : undefined;
    const target = logTarget(pod, node, query);
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    return proxyLogs(target, res, controller.signal);
  }
  if (sub === 'token' && r.specialSubresources.includes('token') && verb === 'create') {
    const account = api.store.get(r.storageKey, namespace, name);
    const lookup = (storageKey: string, ns: string, n: string) => api.store.get(storageKey, ns, n);
    return send(res, 201, createToken({ namespace, name, body: obj(decodeBody(body ?? Buffer.alloc(0), contentType)), account, lookup, signer: options.signer }));
  }
  if (sub === 'binding' && r.specialSubresources.includes('binding') && verb === 'create') {
    return send(res, 201, bindPod(api, namespace, name, obj(decodeBody(body ?? Buffer.alloc(0), contentType)), r));
  }
  if (sub === 'finalize' && r.kind === 'Namespace' && verb === 'update') {
    const decoded = obj(decodeBody(body ?? Buffer.alloc(0), contentType));
    const current = api.getStored(r, '', name);
    const next = structuredClone(current);
    next.spec = { ...obj(next.spec), finalizers: obj(decoded.spec).finalizers ?? [] };
    const result = api.commitUpdate(r, current, next, writeOptions(query, req), undefined, undefined);
    return send(res, 200, result.object);
  }
  throw resourceNotFound();
}

/** services/{[scheme:]name[:port]}/proxy[/path]: the request goes on to one of the Service's pods. */
async function proxyService(options: HttpOptions, req: IncomingMessage, res: ServerResponse, url: URL, method: string, rp: ResourcePath, namespace: string | undefined): Promise<void> {
  if (namespace === undefined) throw resourceNotFound();
  if (!PROXY_METHODS.has(method)) throw methodNotAllowed('');
  const { api } = options;
  const kind = (plural: string): ResourceInfo => {
    const r = api.registry.find('', 'v1', plural);
    if (!r) throw internal(`no ${plural} resource`);
    return r;
  };
  const id = rp.name ?? '';
  const location = serviceLocation(namespace, id, {
    service: (name) => api.getStored(kind('services'), namespace, name),
    endpoints: (name) => api.getStored(kind('endpoints'), namespace, name),
    pod: (name) => api.store.get(kind('pods').storageKey, namespace, name),
  });
  // Go's server decodes the whole path before the apiserver splits it, so an encoded slash in the
  // proxied path (client-node encodes `{path}` as one component) is a slash for the backend.
  let requestPath: string;
  try {
    requestPath = decodeURIComponent(url.pathname);
  } catch {
    throw badRequest(`invalid URL escape in ${url.pathname}`);
  }
  // api/v1 or apis/g/v, [watch,] namespaces/ns, services/id/proxy
  const prefixSegments = (rp.group === '' ? 2 : 3) + (rp.legacyWatch ? 1 : 0) + 2 + 3;
  const rawQuery = url.search.replace(/^\?/, '');
  await proxyHttp({ location, path: proxySubpath(requestPath, prefixSegments) }, { req, res, requestPath, rawQuery, fail: (error) => sendError(res, error) });
}

function sendDiscovery(res: ServerResponse, body: unknown, contentType: string): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': DISCOVERY_CACHE_CONTROL });
  res.end(text);
}

function handleNonResource(options: HttpOptions, req: IncomingMessage, res: ServerResponse, path: string): void {
  const { api } = options;
  const registry = api.registry;
  const aggregated = aggregatedVersionAccepted(req.headers.accept);
  if (path === '/version') return send(res, 200, SERVER_VERSION);
  if (path === OPENID_CONFIGURATION_PATH) return sendDiscovery(res, openidConfiguration(ISSUER, options.serverAddress()), 'application/json');
  if (path === JWKS_PATH) return sendDiscovery(res, jwks(options.signer), 'application/jwk-set+json');
  if (path === '/healthz' || path === '/livez' || path === '/readyz') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('ok');
    return;
  }
  if (path === '/api' || path === '/apis') {
    if (aggregated) {
      return send(res, 200, aggregatedDiscovery(registry, path === '/api', aggregated), `application/json;g=apidiscovery.k8s.io;v=${aggregated};as=APIGroupDiscoveryList`);
    }
    return send(res, 200, path === '/api' ? apiVersions(options.serverAddress()) : apiGroupList(registry));
  }
  let m = /^\/api\/([^/]+)$/.exec(path);
  if (m) {
    const list = apiResourceList(registry, '', m[1] ?? '');
    if (!list) throw resourceNotFound();
    return send(res, 200, list);
  }
  m = /^\/apis\/([^/]+)$/.exec(path);
  if (m) {
    const g = apiGroup(registry, m[1] ?? '');
    if (!g) throw resourceNotFound();
    return send(res, 200, g);
  }
  m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
  if (m) {
    const list = apiResourceList(registry, m[1] ?? '', m[2] ?? '');
    if (!list) throw resourceNotFound();
    return send(res, 200, list);
  }
  if (path === '/openapi/v2') return send(res, 200, openapiV2(registry));
  if (path === '/openapi/v3') return send(res, 200, openapiV3Root(registry));
  m = /^\/openapi\/v3\/(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (m) {
    const doc = m[1] !== undefined ? openapiV3GroupVersion(registry, '', m[1]) : openapiV3GroupVersion(registry, m[2] ?? '', m[3] ?? '');
    if (!doc) throw resourceNotFound();
    return send(res, 200, doc);
  }
  throw resourceNotFound();
}
