// The RBAC objects kube-apiserver's bootstrap policy makes at start (its `rbac/bootstrap-roles`
// post-start hook) that this project's components bind to: `system:auth-delegator` (what a
// server needs to delegate authentication: TokenReview, SubjectAccessReview) and the service
// account issuer discovery role, bound to every service account. Pure data; controllers.ts
// creates them, and puts back what an auto-updated one lost, each time the server starts.
import type { JsonObject } from './json.ts';

const RBAC = 'rbac.authorization.k8s.io';
const BOOTSTRAP_META = {
  annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' },
  labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' },
};

export const AUTH_DELEGATOR_ROLE = 'system:auth-delegator';
export const ISSUER_DISCOVERY_ROLE = 'system:service-account-issuer-discovery';

export function bootstrapClusterRoles(): JsonObject[] {
  return [
    {
      apiVersion: `${RBAC}/v1`,
      kind: 'ClusterRole',
      metadata: { name: AUTH_DELEGATOR_ROLE, ...structuredClone(BOOTSTRAP_META) },
      rules: [
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      ],
    },
    {
      apiVersion: `${RBAC}/v1`,
      kind: 'ClusterRole',
      metadata: { name: ISSUER_DISCOVERY_ROLE, ...structuredClone(BOOTSTRAP_META) },
      rules: [{ nonResourceURLs: ['/.well-known/openid-configuration', '/.well-known/openid-configuration/', '/openid/v1/jwks', '/openid/v1/jwks/'], verbs: ['get'] }],
    },
  ];
}

export function bootstrapClusterRoleBindings(): JsonObject[] {
  return [
    {
      apiVersion: `${RBAC}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: ISSUER_DISCOVERY_ROLE, ...structuredClone(BOOTSTRAP_META) },
      roleRef: { apiGroup: RBAC, kind: 'ClusterRole', name: ISSUER_DISCOVERY_ROLE },
      subjects: [{ apiGroup: RBAC, kind: 'Group', name: 'system:serviceaccounts' }],
    },
  ];
}

/**
 * Upstream's reconciliation of an existing bootstrap object: with `autoupdate: "true"` the
 * missing rules (subjects) are added and the bootstrap labels and annotations put back; anything
 * the cluster's owner added stays. Returns the object to store, or undefined when nothing changes.
 */
export function reconcileBootstrap(current: JsonObject, desired: JsonObject, field: 'rules' | 'subjects'): JsonObject | undefined {
  const meta = (current.metadata ?? {}) as { annotations?: Record<string, string>; labels?: Record<string, string> };
  if (meta.annotations?.['rbac.authorization.kubernetes.io/autoupdate'] === 'false') return undefined;
  const have = Array.isArray(current[field]) ? (current[field] as unknown[]) : [];
  const key = (v: unknown) => JSON.stringify(v, Object.keys((v ?? {}) as object).sort());
  const known = new Set(have.map(key));
  const missing = ((desired[field] as unknown[]) ?? []).filter((v) => !known.has(key(v)));
  const labels = { ...BOOTSTRAP_META.labels, ...meta.labels };
  const annotations = { ...BOOTSTRAP_META.annotations, ...meta.annotations };
  const sameMeta = JSON.stringify(labels) === JSON.stringify(meta.labels ?? {}) && JSON.stringify(annotations) === JSON.stringify(meta.annotations ?? {});
  if (missing.length === 0 && sameMeta) return undefined;
  return { ...structuredClone(current), metadata: { ...structuredClone(current.metadata as JsonObject), labels, annotations }, [field]: [...have, ...missing] };
}
