// The least-privilege check of the chart: the Roles and ClusterRoles a rendered release binds to
// the operator's service account, applied to the requests the test API server logged for it.
// Rule matching is rbac-rules.ts (independent of the test API server); this adds the bindings'
// scopes (a RoleBinding's rules count only in its namespace) and the default discovery access.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { RequestLogEntry } from '@nixery/k8s-harness';
import { allowed, unusedPermissionsOf, type Permission, type PolicyRule } from './rbac-rules.ts';

export interface Grant {
  /** Where the rules apply: a namespace, or undefined for everywhere (a ClusterRoleBinding). */
  namespace: string | undefined;
  source: string;
  rules: PolicyRule[];
}

/**
 * What every authenticated user may read through the default ClusterRole system:discovery:
 * client-node's KubernetesObjectApi looks resources up there before it writes or lists.
 */
export const DISCOVERY: Grant = {
  namespace: undefined,
  source: 'ClusterRole system:discovery (default)',
  rules: [{ verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/openapi', '/openapi/*', '/version', '/version/'] }],
};

/** The grants of a service account, from the RBAC objects of a rendered chart. */
export function grantsFor(objects: readonly KubernetesObject[], serviceAccount: { name: string; namespace: string }): Grant[] {
  type Binding = KubernetesObject & { roleRef: { kind: string; name: string }; subjects?: { kind: string; name: string; namespace?: string }[] };
  type Role = KubernetesObject & { rules?: PolicyRule[] };
  const roles = objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole') as Role[];
  const grants: Grant[] = [];
  for (const binding of objects.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') as Binding[]) {
    const bound = binding.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount.name && s.namespace === serviceAccount.namespace);
    if (!bound) continue;
    const namespace = binding.kind === 'RoleBinding' ? binding.metadata!.namespace! : undefined;
    const role = roles.find((r) => r.kind === binding.roleRef.kind && r.metadata!.name === binding.roleRef.name && (r.kind === 'ClusterRole' || r.metadata!.namespace === namespace));
    if (!role) throw new Error(`${binding.kind} ${binding.metadata!.name} refers to a missing ${binding.roleRef.kind} ${binding.roleRef.name}`);
    grants.push({ namespace, source: `${role.kind} ${role.metadata!.name}${namespace ? ` in ${namespace}` : ''}`, rules: role.rules ?? [] });
  }
  return grants;
}

const applies = (grant: Grant, request: RequestLogEntry) => grant.namespace === undefined || grant.namespace === (request.namespace ?? '');

/** Requests no grant allows (with `create` too for a PUT or PATCH that created its object). */
export function deniedRequests(grants: readonly Grant[], requests: readonly RequestLogEntry[]): RequestLogEntry[] {
  return requests.filter((request) => !allowed([...DISCOVERY.rules, ...grants.filter((g) => applies(g, request)).flatMap((g) => g.rules)], request));
}

/** What each grant allows that none of the requests in its scope used. */
export function unusedPermissions(grants: readonly Grant[], requests: readonly RequestLogEntry[]): { source: string; atom: Permission }[] {
  return grants.flatMap((grant) => unusedPermissionsOf(grant.rules, requests.filter((r) => applies(grant, r))).map((atom) => ({ source: grant.source, atom })));
}

/** `verb resource[.group]` (with `name` when the atom is limited to one object). */
export function atomKey(atom: Permission): string {
  if ('nonResourceURL' in atom) return `${atom.verb} ${atom.nonResourceURL}`;
  return `${atom.verb} ${atom.resource}${atom.apiGroup ? `.${atom.apiGroup}` : ''}${atom.resourceName ? ` ${atom.resourceName}` : ''}`;
}
