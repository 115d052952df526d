// Who may do what on an instance's registry, as objects: the access policy (the user's rules, one
// push grant per NixImage build, the operator's pull user), the pull Secrets in other namespaces,
// and the binding that lets the registry review ServiceAccount tokens. Pure.
import type { V1ClusterRoleBinding, V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { API_VERSION, type AccessRule, type NixeryInstance } from '../api/types.ts';
import { commonLabels, controllerReference, INSTANCE_NAMESPACE_LABEL } from '../kube/labels.ts';
import { instanceEndpoint } from './endpoint.ts';

export { INSTANCE_NAMESPACE_LABEL };
export const POLICY_KEY = 'policy.json';
export const TOKEN_KEY_KEY = 'key.pem';

export function policyConfigMapName(instanceName: string): string {
  return `${instanceName}-auth-policy`;
}
export function tokenKeySecretName(instanceName: string): string {
  return `${instanceName}-token-key`;
}
export function pullUserSecretName(instanceName: string): string {
  return `${instanceName}-pull-user`;
}
/** The `kubernetes.io/dockerconfigjson` Secret in each of spec.auth.pullSecretNamespaces. */
export function pullSecretName(instanceName: string): string {
  return `${instanceName}-pull`;
}
/** The ServiceAccount a NixImage's build Job runs as; the policy lets it push that image only. */
export function buildServiceAccountName(imageName: string): string {
  return `nixery-build-${imageName}`;
}
/** Cluster-scoped, so named for the namespace too (a namespace name has no dots). */
export function authDelegatorBindingName(instance: NixeryInstance): string {
  return `nixery.${instance.metadata.namespace}.${instance.metadata.name}.auth-delegator`;
}

/** The audience of the ServiceAccount tokens the registry accepts (NIXERY_K8S_TOKEN_AUDIENCE). */
export function tokenAudience(instance: NixeryInstance): string {
  return `nixery.dev/${instance.metadata.namespace}/${instance.metadata.name}`;
}

export function anonymousPull(instance: NixeryInstance): boolean {
  return instance.spec.auth?.anonymousPull ?? true;
}

/** A NixImage build that pushes to the instance: the repository its ServiceAccount may write. */
export interface BuildGrant {
  serviceAccount: string;
  repository: string;
}

/**
 * Without policy rules of its own an instance keeps the registry's meaning of "no policy": every
 * authenticated identity pulls everything. Its own rules replace that entirely.
 */
const DEFAULT_RULES: AccessRule[] = [{ repositories: ['**'], authenticated: true, actions: ['pull'] }];

export function renderPolicy(instance: NixeryInstance, builds: readonly BuildGrant[], pullUser: string): { rules: AccessRule[] } {
  const { namespace } = instance.metadata;
  const own = instance.spec.auth?.policy?.rules ?? DEFAULT_RULES;
  const grants = [...builds]
    .sort((a, b) => (a.serviceAccount < b.serviceAccount ? -1 : a.serviceAccount > b.serviceAccount ? 1 : 0))
    .map((b): AccessRule => ({ repositories: [b.repository], serviceAccounts: [`${namespace}/${b.serviceAccount}`], actions: ['pull', 'push', 'delete'], overOnDemandNames: true }));
  return { rules: [...own, ...grants, { repositories: ['**'], users: [pullUser], actions: ['pull'] }] };
}

export function desiredPolicyConfigMap(instance: NixeryInstance, policy: { rules: AccessRule[] }): V1ConfigMap {
  const { name, namespace } = instance.metadata;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: policyConfigMapName(name), namespace, labels: commonLabels(name, 'auth'), ownerReferences: [ownerOf(instance)] },
    data: { [POLICY_KEY]: `${JSON.stringify(policy, null, 2)}\n` },
  };
}

/** The registry addresses pods pull from: the Service's DNS name, and the node-local path when on. */
export function pullHosts(instance: NixeryInstance): string[] {
  const nodeLocal = instance.spec.nodeLocal;
  return [instanceEndpoint(instance), ...(nodeLocal?.enabled ? [`localhost:${nodeLocal.hostPort}`] : [])];
}

export function dockerConfigJson(hosts: readonly string[], username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return JSON.stringify({ auths: Object.fromEntries(hosts.map((host) => [host, { username, password, auth }])) });
}

/** Labels of an object of the instance that its owner reference cannot reach. */
export function unownedLabels(instance: NixeryInstance, component: string): Record<string, string> {
  return { ...commonLabels(instance.metadata.name, component), [INSTANCE_NAMESPACE_LABEL]: instance.metadata.namespace };
}

/** A pull Secret in `namespace`: not owned (another namespace), removed by the instance's finalizer. */
export function desiredPullSecret(instance: NixeryInstance, namespace: string, credentials: { username: string; password: string }): V1Secret {
  const config = dockerConfigJson(pullHosts(instance), credentials.username, credentials.password);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name: pullSecretName(instance.metadata.name), namespace, labels: unownedLabels(instance, 'pull-secret') },
    // data, not stringData: what is applied is compared with what the cache holds.
    data: { '.dockerconfigjson': Buffer.from(config).toString('base64') },
  };
}

/** Lets the registry's ServiceAccount create TokenReviews (and SubjectAccessReviews), as kube-rbac-proxy's does. */
export function desiredAuthDelegatorBinding(instance: NixeryInstance): V1ClusterRoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: authDelegatorBindingName(instance), labels: unownedLabels(instance, 'auth-delegator') },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
    subjects: [{ kind: 'ServiceAccount', name: instance.metadata.name, namespace: instance.metadata.namespace }],
  };
}

function ownerOf(instance: NixeryInstance) {
  return controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata });
}
