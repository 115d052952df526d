// What a request is, from its method and URL alone, as upstream's RequestInfoFactory derives it:
// the resource path, the authorization verb and attributes, and the entry each request gets in
// the request log.
import { apiGroup } from './discovery.ts';

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

export interface ResourcePath {
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

export function resourceVerb(method: string, p: ResourcePath, query: URLSearchParams): Verb | '' {
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

export const PROXY_VERBS: Record<string, Verb> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
export const PROXY_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** kube-apiserver's long-running requests (its audit writes ResponseStarted for them too). */
export function longRunning(rp: ResourcePath | undefined, verb: string): boolean {
  return verb === 'watch' || (rp !== undefined && ['proxy', 'log', 'attach', 'exec', 'portforward'].includes(rp.subresource ?? ''));
}

/** The name a list or watch is limited to by `metadata.name=x` (or `==`) in its field selector. */
export function selectedName(fieldSelector: string | null): string | undefined {
  for (const term of (fieldSelector ?? '').split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*([^\s=!]+)\s*$/.exec(term);
    if (m) return m[1];
  }
  return undefined;
}

/** The resource attributes of a request, as upstream's RequestInfoFactory derives them from its URL. */
export function resourceAttributes(rp: ResourcePath | undefined, verb: Verb | NonResourceVerb | '', query: URLSearchParams): Pick<RequestLogEntry, 'resourceRequest' | 'apiGroup' | 'apiVersion' | 'resource' | 'subresource' | 'namespace' | 'name'> {
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
