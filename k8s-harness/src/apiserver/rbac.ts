// RBAC's rule matching (k8s.io/kubernetes/pkg/apis/rbac/v1 RuleAllows), as pure functions over
// the request log: this server authorizes everything, so whether a ClusterRole or Role would have
// allowed what a client did — and which of its grants the client never needed — is computed
// afterwards from the log.

/** rbac.authorization.k8s.io/v1 PolicyRule */
export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** What authorization looks at in a request; every RequestLogEntry is one. */
export interface AuthorizationRequest {
  verb: string;
  path: string;
  resourceRequest: boolean;
  apiGroup?: string;
  resource?: string;
  subresource?: string;
  name?: string;
  created?: boolean;
}

const has = (list: readonly string[] | undefined, value: string): boolean => (list ?? []).some((x) => x === '*' || x === value);

/** `pods` or `pods/log`; `*` matches all, and `*\/log` the log subresource of anything (`pods/*` matches nothing more). */
function resourceMatches(rule: PolicyRule, resource: string, subresource: string | undefined): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  return (rule.resources ?? []).some((r) => r === '*' || r === combined || (subresource !== undefined && r === `*/${subresource}`));
}

function nonResourceUrlMatches(rule: PolicyRule, path: string): boolean {
  return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === path || (u.endsWith('*') && path.startsWith(u.slice(0, -1))));
}

function allowsVerb(rule: PolicyRule, request: AuthorizationRequest, verb: string): boolean {
  if (!has(rule.verbs, verb)) return false;
  if (!request.resourceRequest) return nonResourceUrlMatches(rule, request.path);
  if (!has(rule.apiGroups, request.apiGroup ?? '')) return false;
  if (!resourceMatches(rule, request.resource ?? '', request.subresource)) return false;
  // A rule with resourceNames never matches a request without a name (create, list, watch of all).
  return (rule.resourceNames ?? []).length === 0 || (rule.resourceNames ?? []).includes(request.name ?? '');
}

/** Whether one rule grants the request's verb (not the extra `create` of a creating PUT/PATCH). */
export function ruleAllows(rule: PolicyRule, request: AuthorizationRequest): boolean {
  return allowsVerb(rule, request, request.verb);
}

/**
 * Whether the rules (of the ClusterRoles and Roles bound to the request's user — for a Role or a
 * RoleBinding, only requests in that namespace count) grant the request. A PUT or PATCH that
 * created its object needs `create` as well, as on a real API server.
 */
export function rbacAllows(rules: readonly PolicyRule[], request: AuthorizationRequest): boolean {
  const verbs = request.created ? [request.verb, 'create'] : [request.verb];
  return verbs.every((verb) => rules.some((rule) => allowsVerb(rule, request, verb)));
}

/** One atom of what a rule grants: a verb on a resource (optionally a named object) or on a URL. */
export type Grant =
  | { apiGroup: string; resource: string; verb: string; resourceName?: string }
  | { nonResourceURL: string; verb: string };

/**
 * The atoms of `rules` that no request used: empty when the rules are least privilege for the
 * requests. Wildcards count as used if anything matched them.
 */
export function unusedGrants(rules: readonly PolicyRule[], requests: readonly AuthorizationRequest[]): Grant[] {
  const unused: Grant[] = [];
  const used = (atom: PolicyRule): boolean =>
    requests.some((request) => (request.created ? [request.verb, 'create'] : [request.verb]).some((verb) => allowsVerb(atom, request, verb)));
  for (const rule of rules) {
    for (const verb of rule.verbs) {
      for (const url of rule.nonResourceURLs ?? []) {
        if (!used({ verbs: [verb], nonResourceURLs: [url] })) unused.push({ nonResourceURL: url, verb });
      }
      for (const apiGroup of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          const names = rule.resourceNames && rule.resourceNames.length > 0 ? rule.resourceNames : [undefined];
          for (const resourceName of names) {
            const atom: PolicyRule = { verbs: [verb], apiGroups: [apiGroup], resources: [resource], ...(resourceName !== undefined ? { resourceNames: [resourceName] } : {}) };
            if (!used(atom)) unused.push({ apiGroup, resource, verb, ...(resourceName !== undefined ? { resourceName } : {}) });
          }
        }
      }
    }
  }
  return unused;
}
