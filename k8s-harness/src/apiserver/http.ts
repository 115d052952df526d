// HTTP: authenticates and logs each request with its authorization attributes, routes it to
// discovery, OpenAPI, resource operations and watches; negotiates Table and PartialObjectMetadata
// responses; turns errors into Status objects.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { obj } from './api.ts';
import type { Api, DeleteOptions, FieldValidation, JsonObject, PatchType, WriteOptions } from './api.ts';
import { aggregatedDiscovery, aggregatedVersionAccepted, apiGroup, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.ts';
import { auditIdOf, auditRequest, recordRequestObject, recordResponseStatus } from './audit.ts';
import type { AuditLog } from './audit.ts';
import { authenticate } from './auth.ts';
import { ApiError, badRequest, internal, methodNotAllowed, resourceNotFound, unauthorized, unsupportedMediaType } from './errors.ts';
import { logTarget, proxyLogs } from './logs.ts';
import { decodeProtobufObject, ProtobufError } from './protobuf.ts';
import { openapiV2, openapiV3GroupVersion, openapiV3Root } from './openapi.ts';
import { proxyHttp, proxySubpath } from './proxy-handler.ts';
import { apiVersionOf } from './resources.ts';
import type { ResourceInfo } from './resources.ts';
import { createToken } from './serviceaccounts.ts';
import { serviceLocation } from './service-location.ts';
import type { StoreEvent } from './store.ts';
import { toTable } from './table.ts';
import type { TokenSigner } from './tokens.ts';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';
/** Requests outside /api/<v>/… and /apis/<g>/<v>/… are authorized by their lower-case HTTP method. */
export type NonResourceVerb = 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head' | 'options';

/**
 * One request as kube-apiserver's authorizers see it (authorizer.Attributes): the user and, for
 * resource requests, the API group, resource, subresource, namespace and name that RBAC rules
 * are matched against (see rbac.ts).
 */
export interface RequestLogEntry {
  method: string;
  path: string;
  /** '' for an OPTIONS request to a proxy subresource: upstream maps no verb to that method */
  verb: Verb | NonResourceVerb | '';
  /** The fieldManager query parameter, which tells whose write it was. */
  fieldManager?: string;
  /** `admin` (the kubeconfig's token), `system:serviceaccount:<ns>:<name>`, `system:anonymous` (no credentials); '' when the credentials were rejected (401) */
  user: string;
  groups: string[];
  /** false for discovery, OpenAPI, /version, /healthz…: RBAC matches those by `nonResourceURLs` and `path` */
  resourceRequest: boolean;
  /** '' for the core group */
  apiGroup?: string;
  apiVersion?: string;
  resource?: string;
  subresource?: string;
  /** a namespace object's own name counts as its namespace, as upstream */
  namespace?: string;
  /** the object's name; for list and watch, the name a `metadata.name=` field selector pins;
   *  for services/proxy the id as in the URL (`web:http`, `https:web:443`), which RBAC resourceNames must match */
  name?: string;
  /** a PUT or PATCH that created the object: a real API server also authorizes `create` for it */
  created?: true;
}

export interface HttpOptions {
  api: Api;
  signer: TokenSigner;
  requestLog: RequestLogEntry[];
  serverAddress: () => string;
  bookmarkIntervalMs: number;
  /** watches without timeoutSeconds end after a random time between this and twice this */
  minRequestTimeoutSeconds: number;
  openWatches: Set<() => void>;
  /** kube-apiserver's --audit-log-path */
  auditLog?: AuditLog;
}

interface ResourcePath {
  group: string;
  version: string;
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  legacyWatch: boolean;
}

/**
 * Splits /api/v1/namespaces/ns/pods/name/log-style paths into their parts. Only `proxy` takes a
 * path after the subresource (…/services/web:http/proxy/some/path).
 */
export function parseResourcePath(pathname: string): ResourcePath | undefined {
  const segs = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) {
    group = '';
    version = segs[1] ?? '';
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1] ?? '';
    version = segs[2] ?? '';
    rest = segs.slice(3);
  } else return undefined;
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status' && rest[2] !== 'finalize') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0 || (rest.length > 3 && rest[2] !== 'proxy')) return undefined;
  return { group, version, resource: rest[0] ?? '', namespace, name: rest[1], subresource: rest[2], legacyWatch };
}

function resourceVerb(method: string, p: ResourcePath, query: URLSearchParams): Verb | '' {
  // Connect subresources map methods to verbs without list/watch/deletecollection.
  if (p.subresource === 'proxy') return PROXY_VERBS[method] ?? '';
  switch (method) {
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return p.name ? 'delete' : 'deletecollection';
    default:
      if (p.legacyWatch || query.get('watch') === 'true' || query.get('watch') === '1') return 'watch';
      return p.name ? 'get' : 'list';
  }
}

const PROXY_VERBS: Record<string, Verb> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
const PROXY_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** kube-apiserver's long-running requests (its audit writes ResponseStarted for them too). */
function longRunning(rp: ResourcePath | undefined, verb: string): boolean {
  return verb === 'watch' || (rp !== undefined && ['proxy', 'log', 'attach', 'exec', 'portforward'].includes(rp.subresource ?? ''));
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json', warnings: string[] = []): void {
  if ((body as { kind?: unknown } | undefined)?.kind === 'Status') recordResponseStatus(res, body as Record<string, unknown>);
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-cache, private' };
  if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(status, headers);
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const apiErr = err instanceof ApiError ? err : internal((err as Error).message ?? String(err));
  if (!(err instanceof ApiError)) process.stderr.write(`[apiserver] ${(err as Error).stack ?? String(err)}\n`);
  if (res.headersSent) {
    res.end();
    return;
  }
  send(res, apiErr.code, apiErr.toStatus());
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** For the audit log only: a body the handler will reject is simply not looked at. */
function tryDecodeBody(buf: Buffer, contentType: string): unknown {
  try {
    return decodeBody(buf, contentType);
  } catch {
    return undefined;
  }
}

function decodeBody(buf: Buffer, contentType: string): unknown {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (buf.length === 0) return undefined;
  if (type === 'application/vnd.kubernetes.protobuf') {
    try {
      return decodeProtobufObject(buf);
    } catch (err) {
      if (err instanceof ProtobufError) throw badRequest(`error decoding protobuf body: ${err.message}`);
      throw err;
    }
  }
  const text = buf.toString('utf8');
  try {
    if (type.includes('yaml')) return parseYaml(text) as unknown;
    if (type === '' || type.includes('json')) return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`error decoding request body: ${(err as Error).message}`);
  }
  throw unsupportedMediaType(contentType);
}

function patchTypeOf(contentType: string): PatchType {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  switch (type) {
    case 'application/json-patch+json':
      return 'json';
    case 'application/merge-patch+json':
      return 'merge';
    case 'application/strategic-merge-patch+json':
      return 'strategic';
    case 'application/apply-patch+yaml':
      return 'apply';
    default:
      throw unsupportedMediaType(contentType);
  }
}

interface Negotiated {
  table: boolean;
  partial: boolean;
}

/** Reads `as=Table` / `as=PartialObjectMetadata(List)` from Accept, honouring client order. */
export function negotiate(accept: string | undefined): Negotiated {
  for (const part of (accept ?? '').split(',')) {
    const [media, ...params] = part.split(';').map((s) => s.trim());
    const p = new Map(params.map((x) => x.split('=').map((y) => y.trim()) as [string, string]));
    const as = p.get('as');
    if (as === 'Table' && (p.get('g') ?? 'meta.k8s.io') === 'meta.k8s.io') return { table: true, partial: false };
    if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && p.get('g') === 'meta.k8s.io') return { table: false, partial: true };
    if (!as && (media === 'application/json' || media === '*/*' || media === 'application/*' || media === 'application/yaml')) return { table: false, partial: false };
  }
  return { table: false, partial: false };
}

function writeOptions(query: URLSearchParams, req: IncomingMessage): WriteOptions {
  const dryRun = query.getAll('dryRun');
  if (dryRun.some((d) => d !== 'All')) throw badRequest(`Invalid dry run value: ${dryRun.join(',')}; supported values are: All`);
  const fv = query.get('fieldValidation') ?? 'Warn';
  if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw badRequest(`fieldValidation must be one of: Ignore, Warn, Strict (got ${fv})`);
  const fieldManager = query.get('fieldManager') ?? undefined;
  if (fieldManager !== undefined && fieldManager.length > 128) throw badRequest('fieldManager: Too long: may not be more than 128 bytes');
  return { dryRun: dryRun.length > 0, ...(fieldManager ? { fieldManager } : {}), fieldValidation: fv as FieldValidation, userAgent: req.headers['user-agent'] ?? '' };
}

function deleteOptions(query: URLSearchParams, body: unknown): DeleteOptions {
  const b = obj(body);
  const out: DeleteOptions = {};
  const policy = query.get('propagationPolicy') ?? (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : undefined);
  if (policy) out.propagationPolicy = policy as DeleteOptions['propagationPolicy'];
  const grace = query.get('gracePeriodSeconds') ?? (typeof b.gracePeriodSeconds === 'number' ? String(b.gracePeriodSeconds) : undefined);
  if (grace !== undefined) out.gracePeriodSeconds = Number(grace);
  const orphan = query.get('orphanDependents') ?? (typeof b.orphanDependents === 'boolean' ? String(b.orphanDependents) : undefined);
  if (orphan !== undefined) out.orphanDependents = orphan === 'true';
  const pre = obj(b.preconditions);
  if (typeof pre.uid === 'string' || typeof pre.resourceVersion === 'string') {
    out.preconditions = { ...(typeof pre.uid === 'string' ? { uid: pre.uid } : {}), ...(typeof pre.resourceVersion === 'string' ? { resourceVersion: pre.resourceVersion } : {}) };
  }
  const dry = [...query.getAll('dryRun'), ...(Array.isArray(b.dryRun) ? (b.dryRun as string[]) : [])];
  if (dry.length > 0) out.dryRun = true;
  return out;
}

/** The name a list or watch is limited to by `metadata.name=x` (or `==`) in its field selector. */
function selectedName(fieldSelector: string | null): string | undefined {
  for (const term of (fieldSelector ?? '').split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*([^\s=!]+)\s*$/.exec(term);
    if (m) return m[1];
  }
  return undefined;
}

/** The resource attributes of a request, as upstream's RequestInfoFactory derives them from its URL. */
function resourceAttributes(rp: ResourcePath | undefined, verb: Verb | NonResourceVerb | '', query: URLSearchParams): Pick<RequestLogEntry, 'resourceRequest' | 'apiGroup' | 'apiVersion' | 'resource' | 'subresource' | 'namespace' | 'name'> {
  if (!rp) return { resourceRequest: false };
  const name = rp.name ?? (verb === 'list' || verb === 'watch' ? selectedName(query.get('fieldSelector')) : undefined);
  const namespace = rp.namespace ?? (rp.group === '' && rp.resource === 'namespaces' ? rp.name : undefined);
  return {
    resourceRequest: true,
    apiGroup: rp.group,
    apiVersion: rp.version,
    resource: rp.resource,
    ...(rp.subresource !== undefined ? { subresource: rp.subresource } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
  };
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
      const result = api.delete(r, namespace, rp.name, deleteOptions(query, decoded));
      return send(res, result.status, result.object);
    }
    case 'deletecollection': {
      const decoded = body && body.length > 0 ? decodeBody(body, contentType || 'application/json') : undefined;
      const out = api.deleteCollection(r, namespace, {
        ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector') as string } : {}),
        ...(query.get('fieldSelector') ? { fieldSelector: query.get('fieldSelector') as string } : {}),
      }, deleteOptions(query, decoded));
      return send(res, 200, out);
    }
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
        return send(res, 200, api.getScale(r, namespace, name));
      case 'update': {
        const result = api.updateScale(r, namespace, name, obj(decodeBody(body ?? Buffer.alloc(0), contentType)), writeOptions(query, req));
        return send(res, result.status, result.object);
      }
      case 'patch': {
        const type = patchTypeOf(contentType);
        const decoded = decodeBody(body ?? Buffer.alloc(0), type === 'apply' ? 'application/yaml' : 'application/json');
        const result = api.patchScale(r, namespace, name, type, decoded, writeOptions(query, req));
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
    return send(res, 201, api.bindPod(namespace, name, obj(decodeBody(body ?? Buffer.alloc(0), contentType)), r));
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

function handleNonResource(options: HttpOptions, req: IncomingMessage, res: ServerResponse, path: string): void {
  const { api } = options;
  const registry = api.registry;
  const aggregated = aggregatedVersionAccepted(req.headers.accept);
  if (path === '/version') return send(res, 200, SERVER_VERSION);
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

// ---------------------------------------------------------------------------------------------
// Watch

function watch(options: HttpOptions, req: IncomingMessage, res: ServerResponse, r: ResourceInfo, namespace: string | undefined, name: string | undefined, query: URLSearchParams, table: boolean): void {
  const { api } = options;
  const fieldSelector = [query.get('fieldSelector'), name ? `metadata.name=${name}` : undefined].filter(Boolean).join(',');
  const sel = api.parseSelection(r, { ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector') as string } : {}), ...(fieldSelector ? { fieldSelector } : {}) });
  const rvParam = query.get('resourceVersion') ?? '';
  const bookmarks = query.get('allowWatchBookmarks') === 'true';
  const sendInitial = query.get('sendInitialEvents');
  const timeoutParam = query.get('timeoutSeconds');
  const timeoutSeconds = timeoutParam !== null ? Number(timeoutParam) : options.minRequestTimeoutSeconds * (1 + Math.random());
  const inScope = (o: JsonObject): boolean => (namespace === undefined || !r.namespaced || obj(o.metadata).namespace === namespace) && api.matches(r, o, sel);
  const render = (o: JsonObject): unknown => {
    const ext = api.external(r, o);
    return table ? toTable(r, [ext], { resourceVersion: String(obj(ext.metadata).resourceVersion) }, query.get('includeObject') ?? 'Metadata', Date.now()) : ext;
  };

  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
  res.flushHeaders();
  let closed = false;
  let lastRV = api.store.resourceVersion;
  const write = (type: string, object: unknown): void => {
    if (!closed) res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const bookmarkObject = (annotations?: Record<string, string>): JsonObject => ({
    kind: r.kind,
    apiVersion: apiVersionOf(r),
    metadata: { resourceVersion: String(lastRV), ...(annotations ? { annotations } : {}) },
  });

  let unsubscribe: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe?.();
    if (timer) clearTimeout(timer);
    if (bookmarkTimer) clearInterval(bookmarkTimer);
    options.openWatches.delete(finish);
    res.end();
  };
  options.openWatches.add(finish);
  req.on('close', finish);
  res.on('close', finish);

  const onEvent = (e: StoreEvent): void => {
    if (e.storageKey !== r.storageKey) return;
    lastRV = e.rv;
    const now = e.type !== 'DELETED' && inScope(e.object);
    const before = e.previous !== undefined && inScope(e.previous);
    if (e.type === 'ADDED' && now) write('ADDED', render(e.object));
    else if (e.type === 'MODIFIED') {
      if (now && before) write('MODIFIED', render(e.object));
      else if (now) write('ADDED', render(e.object));
      else if (before) write('DELETED', render(e.object));
    } else if (e.type === 'DELETED' && before) write('DELETED', render(e.object));
  };

  const initial = rvParam === '' || rvParam === '0' ? sendInitial !== 'false' : sendInitial === 'true';
  try {
    if (initial) {
      const from = api.store.resourceVersion;
      for (const o of api.store.list(r.storageKey, r.namespaced ? namespace : undefined)) if (inScope(o)) write('ADDED', render(o));
      lastRV = from;
      if (sendInitial === 'true' && bookmarks) write('BOOKMARK', bookmarkObject({ 'k8s.io/initial-events-end': 'true' }));
      unsubscribe = api.store.subscribe(from, onEvent);
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from)) throw badRequest(`invalid resource version: ${rvParam}`);
      unsubscribe = api.store.subscribe(from, onEvent);
    }
  } catch (err) {
    if (err instanceof ApiError) {
      write('ERROR', err.toStatus());
      finish();
      return;
    }
    throw err;
  }
  if (bookmarks) bookmarkTimer = setInterval(() => write('BOOKMARK', bookmarkObject()), options.bookmarkIntervalMs);
  if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
    timer = setTimeout(() => {
      if (bookmarks) write('BOOKMARK', bookmarkObject());
      finish();
    }, timeoutSeconds * 1000);
  }
}
