// Who made a request, as kube-apiserver's authenticators decide it: the kubeconfig's static token
// is the cluster admin, a service-account token this server issued is its service account (as
// long as the account and the object it is bound to still exist), no credentials is anonymous,
// and anything else is rejected (401). Nothing is authorized differently by identity: the user
// is recorded so that tests can tell what each client used.
import { obj, type JsonObject } from './json.ts';
import { KUBECONFIG_TOKEN } from './kubeconfig.ts';
import { API_AUDIENCE, type TokenSigner } from './tokens.ts';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
}

export const ADMIN_USER: UserInfo = { username: 'admin', groups: ['system:masters', 'system:authenticated'] };
export const ANONYMOUS_USER: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };

export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/** The identity a service-account token stands for, with the groups Kubernetes gives it. */
export function serviceAccountUser(namespace: string, name: string, uid?: string): UserInfo {
  return {
    username: serviceAccountUsername(namespace, name),
    ...(uid ? { uid } : {}),
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

export type Lookup = (storageKey: string, namespace: string, name: string) => JsonObject | undefined;

/** A pod's token stays valid this long after its deletionTimestamp, as upstream. */
const POD_DELETION_GRACE_SECONDS = 60;

/** The user of a request's Authorization header; undefined means 401 Unauthorized. */
export function authenticate(authorization: string | undefined, signer: TokenSigner, lookup: Lookup, nowSeconds = Math.floor(Date.now() / 1000)): UserInfo | undefined {
  if (authorization === undefined || authorization.trim() === '') return ANONYMOUS_USER;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) return undefined;
  const token = match[1] ?? '';
  if (token === KUBECONFIG_TOKEN) return ADMIN_USER;
  const claims = signer.verify(token);
  if (!claims) return undefined;
  if (!claims.aud.includes(API_AUDIENCE)) return undefined;
  if (claims.exp <= nowSeconds || claims.nbf > nowSeconds + 60) return undefined;
  const k8s = claims['kubernetes.io'];
  const account = lookup('serviceaccounts', k8s.namespace, k8s.serviceaccount.name);
  if (!account || obj(account.metadata).uid !== k8s.serviceaccount.uid) return undefined;
  const bound: Array<[string, string, { name: string; uid: string } | undefined]> = [
    ['pods', k8s.namespace, k8s.pod],
    ['secrets', k8s.namespace, k8s.secret],
    // a node is only checked when the token is bound to it, not when it merely names the pod's node
    ['nodes', '', k8s.pod ? undefined : k8s.node],
  ];
  for (const [key, namespace, ref] of bound) {
    if (!ref) continue;
    const object = lookup(key, namespace, ref.name);
    const meta = obj(object?.metadata);
    if (!object || meta.uid !== ref.uid) return undefined;
    if (typeof meta.deletionTimestamp === 'string' && Date.parse(meta.deletionTimestamp) / 1000 + POD_DELETION_GRACE_SECONDS < nowSeconds) return undefined;
  }
  return serviceAccountUser(k8s.namespace, k8s.serviceaccount.name, k8s.serviceaccount.uid);
}
