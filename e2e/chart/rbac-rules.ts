// Kubernetes RBAC rule semantics, written for the chart's least-privilege check from the
// Kubernetes documentation (Using RBAC Authorization) and kept apart from the test API server:
// that check must not take the thing under test as its oracle.
//
// A rule grants a request when its verbs hold the request's verb and then, for a resource request,
// its apiGroups hold the group, its resources the resource (`pods`, `pods/log` for a subresource,
// `*/scale` for that subresource of anything) and its resourceNames, if it has any, the object's
// name; for any other request (`/healthz`, `/apis`), its nonResourceURLs hold the path, exactly or
// by a prefix that ends in `*`. `*` in any list stands for everything.
import type { V1PolicyRule } from '@kubernetes/client-node';
import type { RequestLogEntry } from '@nixery/k8s-harness';

/** rbac.authorization.k8s.io/v1 PolicyRule */
export type PolicyRule = Pick<V1PolicyRule, 'verbs' | 'apiGroups' | 'resources' | 'resourceNames' | 'nonResourceURLs'>;

/** What an authorizer is asked about a request: the attributes the test cluster logs for each. */
export type RbacRequest = Pick<RequestLogEntry, 'verb' | 'path' | 'resourceRequest' | 'apiGroup' | 'resource' | 'subresource' | 'name' | 'created'>;

/** The smallest thing a rule grants: one verb on one resource (of one group, maybe one object), or on one URL. */
export type Permission =
  | { verb: string; apiGroup: string; resource: string; resourceName?: string }
  | { verb: string; nonResourceURL: string };

const ALL = '*';

function listed(values: readonly string[] | undefined, value: string): boolean {
  return values !== undefined && (values.includes(ALL) || values.includes(value));
}

function coversResource(pattern: string, resource: string, subresource: string | undefined): boolean {
  if (pattern === ALL) return true;
  if (subresource === undefined) return pattern === resource;
  return pattern === `${resource}/${subresource}` || pattern === `${ALL}/${subresource}`;
}

function coversPath(pattern: string, path: string): boolean {
  return pattern.endsWith(ALL) ? path.startsWith(pattern.slice(0, -ALL.length)) : pattern === path;
}

/** The verbs a request needs granted: its own, and `create` for one that created its object. */
export function verbsNeeded(request: RbacRequest): string[] {
  return request.created && request.verb !== 'create' ? [request.verb, 'create'] : [request.verb];
}

/** Whether `rule` grants `verb` on what `request` addresses. */
export function grantsVerb(rule: PolicyRule, request: RbacRequest, verb: string): boolean {
  if (!listed(rule.verbs, verb)) return false;
  if (!request.resourceRequest) return (rule.nonResourceURLs ?? []).some((pattern) => coversPath(pattern, request.path));
  if (!listed(rule.apiGroups, request.apiGroup ?? '')) return false;
  if (!(rule.resources ?? []).some((pattern) => coversResource(pattern, request.resource ?? '', request.subresource))) return false;
  const names = rule.resourceNames ?? [];
  // Names narrow a rule to those objects: a request for no one object (list, create) is outside it.
  return names.length === 0 || (request.name !== undefined && names.includes(request.name));
}

/** Whether the rules together grant every verb the request needs. */
export function allowed(rules: readonly PolicyRule[], request: RbacRequest): boolean {
  return verbsNeeded(request).every((verb) => rules.some((rule) => grantsVerb(rule, request, verb)));
}

/** Every permission the rules grant, one by one, wildcards as written. */
export function permissionsOf(rules: readonly PolicyRule[]): Permission[] {
  return rules.flatMap((rule) =>
    rule.verbs.flatMap((verb): Permission[] => [
      ...(rule.nonResourceURLs ?? []).map((nonResourceURL) => ({ verb, nonResourceURL })),
      ...(rule.apiGroups ?? []).flatMap((apiGroup) =>
        (rule.resources ?? []).flatMap((resource) =>
          rule.resourceNames?.length ? rule.resourceNames.map((resourceName) => ({ verb, apiGroup, resource, resourceName })) : [{ verb, apiGroup, resource }],
        ),
      ),
    ]),
  );
}

/** The one-permission rule that grants exactly `permission`. */
export function ruleOf(permission: Permission): PolicyRule {
  if ('nonResourceURL' in permission) return { verbs: [permission.verb], nonResourceURLs: [permission.nonResourceURL] };
  const { verb, apiGroup, resource, resourceName } = permission;
  return { verbs: [verb], apiGroups: [apiGroup], resources: [resource], ...(resourceName !== undefined ? { resourceNames: [resourceName] } : {}) };
}

/** The permissions of `rules` that none of `requests` needed (a wildcard counts once anything used it). */
export function unusedPermissionsOf(rules: readonly PolicyRule[], requests: readonly RbacRequest[]): Permission[] {
  return permissionsOf(rules).filter((permission) => {
    const rule = ruleOf(permission);
    return !requests.some((request) => verbsNeeded(request).some((verb) => grantsVerb(rule, request, verb)));
  });
}
