// Who made a request, as kube-apiserver's authenticators decide it: the kubeconfig's static token
// is the cluster admin, a service-account token this server issued is its service account (as
// long as the account and the object it is bound to still exist), no credentials is anonymous,
// and anything else is rejected (401). Nothing is authorized differently by identity: the user
// is recorded so that tests can tell what each client used. TokenReview asks the same question
// (authenticateToken) for other audiences.
import { obj, type JsonObject } from './json.ts';
import { KUBECONFIG_TOKEN } from './kubeconfig.ts';
import { API_AUDIENCE, type TokenSigner } from './tokens.ts';

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  /** authentication.kubernetes.io/pod-name, pod-uid, node-name, node-uid, credential-id for a service-account token */
  extra?: Record<string, string[]>;
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

/** jwt.DefaultLeeway: expiry, not-before and the bound objects' deletion are judged with a minute's slack. */
const LEEWAY_SECONDS = 60;

/** What the token authenticators make of a bearer token: who it is and for which audiences, or why not. */
export type TokenAuthentication = { user: UserInfo; audiences: string[] } | { user?: undefined; error: string };

/** Go's %q of a []string: `["a" "b"]`. */
function quoted(list: readonly string[]): string {
  return `[${list.map((a) => JSON.stringify(a)).join(' ')}]`;
}

/**
 * kube-apiserver's token authenticators for one bearer token (the static token of the kubeconfig,
 * then the service-account JWT authenticator), for the audiences asked for (a request to this
 * server: its own audience; a TokenReview: `spec.audiences`, else its own). The error reads as
 * upstream's bearer-token authenticator puts it: `invalid bearer token` for a token nobody
 * recognises, `[invalid bearer token, <why>]` for one the service-account authenticator refused.
 */
export function authenticateToken(token: string, signer: TokenSigner, lookup: Lookup, audiences: readonly string[] = [API_AUDIENCE], nowSeconds = Math.floor(Date.now() / 1000)): TokenAuthentication {
  // The static token file authenticator is audience-agnostic: it answers for whatever was asked.
  if (token === KUBECONFIG_TOKEN) return { user: ADMIN_USER, audiences: [...audiences] };
  const refused = (why: string): TokenAuthentication => ({ error: `[invalid bearer token, ${why}]` });
  const checked = signer.check(token);
  if (!('claims' in checked)) return checked.error ? refused(checked.error) : { error: 'invalid bearer token' };
  const claims = checked.claims;
  const tokenAudiences = claims.aud.length > 0 ? claims.aud : [API_AUDIENCE];
  const granted = tokenAudiences.filter((a) => audiences.includes(a));
  if (granted.length === 0) return refused(`token audiences ${quoted(tokenAudiences)} is invalid for the target audiences ${quoted(audiences)}`);
  if (typeof claims.exp === 'number' && nowSeconds - LEEWAY_SECONDS > claims.exp) return refused('service account token has expired');
  if (typeof claims.nbf === 'number' && nowSeconds + LEEWAY_SECONDS < claims.nbf) return refused('service account token is not valid yet');
  if (typeof claims.iat === 'number' && nowSeconds + LEEWAY_SECONDS < claims.iat) return refused('service account token is issued in the future');
  const k8s = claims['kubernetes.io'];
  const namespace = k8s.namespace;
  const deletedLongAgo = (meta: JsonObject) => typeof meta.deletionTimestamp === 'string' && Date.parse(meta.deletionTimestamp) / 1000 < nowSeconds - LEEWAY_SECONDS;
  const account = lookup('serviceaccounts', namespace, k8s.serviceaccount.name);
  if (!account) return refused(`serviceaccounts "${k8s.serviceaccount.name}" not found`);
  const accountMeta = obj(account.metadata);
  if (deletedLongAgo(accountMeta)) return refused(`service account ${namespace}/${k8s.serviceaccount.name} has been deleted`);
  if (accountMeta.uid !== k8s.serviceaccount.uid) return refused(`service account UID (${String(accountMeta.uid)}) does not match claim (${k8s.serviceaccount.uid})`);
  // The objects a token is bound to; a node is only checked when the token is bound to it, not
  // when it merely names a pod's node.
  const bound: Array<[string, string, string, { name: string; uid: string } | undefined]> = [
    ['secrets', 'secret', namespace, k8s.secret],
    ['pods', 'pod', namespace, k8s.pod],
    ['nodes', 'node', '', k8s.pod ? undefined : k8s.node],
  ];
  for (const [key, what, ns, ref] of bound) {
    if (!ref) continue;
    const object = lookup(key, ns, ref.name);
    const meta = obj(object?.metadata);
    if (!object || deletedLongAgo(meta)) return refused('service account token has been invalidated');
    if (meta.uid !== ref.uid) {
      return refused(`${what} UID (${String(meta.uid)}) does not match service account ${what} ref claim (${ref.uid})`);
    }
  }
  const user = serviceAccountUser(namespace, k8s.serviceaccount.name, k8s.serviceaccount.uid);
  const extra: Record<string, string[]> = {};
  if (k8s.pod) {
    extra['authentication.kubernetes.io/pod-name'] = [k8s.pod.name];
    extra['authentication.kubernetes.io/pod-uid'] = [k8s.pod.uid];
  }
  if (typeof claims.jti === 'string' && claims.jti !== '') extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`];
  if (k8s.node) {
    extra['authentication.kubernetes.io/node-name'] = [k8s.node.name];
    if (k8s.node.uid) extra['authentication.kubernetes.io/node-uid'] = [k8s.node.uid];
  }
  if (Object.keys(extra).length > 0) user.extra = extra;
  return { user, audiences: granted };
}

/** The user of a request's Authorization header; undefined means 401 Unauthorized. */
export function authenticate(authorization: string | undefined, signer: TokenSigner, lookup: Lookup, nowSeconds = Math.floor(Date.now() / 1000)): UserInfo | undefined {
  if (authorization === undefined || authorization.trim() === '') return ANONYMOUS_USER;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match) return undefined;
  return authenticateToken(match[1] ?? '', signer, lookup, [API_AUDIENCE], nowSeconds).user;
}
