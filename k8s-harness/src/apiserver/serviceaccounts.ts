// Service accounts as kube-apiserver serves them: the ServiceAccount admission plugin (a pod's
// account must exist; a pod without imagePullSecrets gets the account's; its API credentials are
// mounted as the projected `kube-api-access-*` volume unless automountServiceAccountToken says no) and the TokenRequest subresource
// (`POST .../serviceaccounts/<name>/token`) that kubelets call to fill that volume.
import { randomUUID } from 'node:crypto';
import { obj, type JsonObject } from './json.ts';
import type { Lookup } from './auth.ts';
import { serviceAccountUsername } from './auth.ts';
import { ApiError, badRequest, conflict, forbidden, invalid, notFound } from './errors.ts';
import { API_AUDIENCE, ISSUER, type ServiceAccountClaims, type TokenSigner } from './tokens.ts';

export const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Published in every namespace (the root-ca-cert-publisher's ConfigMap) and projected into pods. */
export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';
export const ROOT_CA_DESCRIPTION =
  'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';
const TOKEN_VOLUME_PREFIX = 'kube-api-access-';
/** What the admission plugin asks for; kubelets refresh at 80% of it. */
const BOUND_TOKEN_EXPIRATION_SECONDS = 3607;
const DEFAULT_EXPIRATION_SECONDS = 3600;
const MIN_EXPIRATION_SECONDS = 600;

function list(v: unknown): JsonObject[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

function tokenVolume(name: string): JsonObject {
  return {
    name,
    projected: {
      defaultMode: 0o644,
      sources: [
        { serviceAccountToken: { expirationSeconds: BOUND_TOKEN_EXPIRATION_SECONDS, path: 'token' } },
        { configMap: { name: ROOT_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

/**
 * The ServiceAccount admission plugin on pod creation: refuses a pod whose service account does
 * not exist (403, as upstream), gives a pod without imagePullSecrets its account's, and unless
 * the pod, else its account, sets automountServiceAccountToken to false, gives every container
 * without a mount at the standard path the `kube-api-access-<suffix>` volume (token, ca.crt, namespace).
 */
export function admitPodServiceAccount(pod: JsonObject, account: JsonObject | undefined, suffix: () => string): void {
  const meta = obj(pod.metadata);
  const spec = obj(pod.spec);
  const accountName = typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '' ? spec.serviceAccountName : 'default';
  const namespace = String(meta.namespace ?? '');
  if (!account) {
    throw forbidden({ group: '', plural: 'pods' }, String(meta.name ?? ''), `error looking up service account ${namespace}/${accountName}: serviceaccount "${accountName}" not found`);
  }
  // A pod that names no pull secrets gets its account's, as upstream's plugin gives them.
  const accountPullSecrets = list(account.imagePullSecrets).filter((r) => typeof r.name === 'string' && r.name !== '');
  if (list(spec.imagePullSecrets).length === 0 && accountPullSecrets.length > 0) spec.imagePullSecrets = accountPullSecrets.map((r) => ({ name: r.name }));
  const automount = typeof spec.automountServiceAccountToken === 'boolean' ? spec.automountServiceAccountToken : account.automountServiceAccountToken !== false;
  if (!automount) return;
  const volumes = list(spec.volumes);
  const existing = volumes.find((v) => typeof v.name === 'string' && v.name.startsWith(TOKEN_VOLUME_PREFIX));
  const volumeName = typeof existing?.name === 'string' ? existing.name : `${TOKEN_VOLUME_PREFIX}${suffix()}`;
  let needed = false;
  for (const field of ['initContainers', 'containers'] as const) {
    for (const container of list(spec[field])) {
      const mounts = list(container.volumeMounts);
      if (mounts.some((m) => m.mountPath === SERVICE_ACCOUNT_MOUNT_PATH)) continue;
      container.volumeMounts = [...mounts, { name: volumeName, readOnly: true, mountPath: SERVICE_ACCOUNT_MOUNT_PATH }];
      needed = true;
    }
  }
  if (needed && !existing) spec.volumes = [...volumes, tokenVolume(volumeName)];
}

export interface TokenRequestInput {
  namespace: string;
  name: string;
  body: JsonObject;
  account: JsonObject | undefined;
  lookup: Lookup;
  signer: TokenSigner;
  nowSeconds?: number;
}

const BINDABLE: Record<string, { storageKey: string; plural: string; namespaced: boolean; claim: 'pod' | 'secret' | 'node' }> = {
  Pod: { storageKey: 'pods', plural: 'pods', namespaced: true, claim: 'pod' },
  Secret: { storageKey: 'secrets', plural: 'secrets', namespaced: true, claim: 'secret' },
  Node: { storageKey: 'nodes', plural: 'nodes', namespaced: false, claim: 'node' },
};

/** Answers a TokenRequest: a signed token for the service account, bound to an object if asked. */
export function createToken(input: TokenRequestInput): JsonObject {
  const { namespace, name, body, account, lookup, signer } = input;
  if (body.kind !== undefined && body.kind !== 'TokenRequest') badKind(String(body.kind));
  if (!account) throw notFound({ group: '', plural: 'serviceaccounts' }, name);
  const spec = obj(body.spec);
  const expirationSeconds = spec.expirationSeconds === undefined || spec.expirationSeconds === null ? DEFAULT_EXPIRATION_SECONDS : Number(spec.expirationSeconds);
  if (!Number.isInteger(expirationSeconds) || expirationSeconds < MIN_EXPIRATION_SECONDS) {
    throw invalid('TokenRequest', 'authentication.k8s.io', name, [{ type: 'FieldValueInvalid', field: 'spec.expirationSeconds', value: spec.expirationSeconds, detail: 'may not specify a duration less than 10 minutes' }]);
  }
  if (expirationSeconds > 2 ** 32) {
    throw invalid('TokenRequest', 'authentication.k8s.io', name, [{ type: 'FieldValueInvalid', field: 'spec.expirationSeconds', value: expirationSeconds, detail: 'may not specify a duration larger than 2^32 seconds' }]);
  }
  const audiences = Array.isArray(spec.audiences) && spec.audiences.length > 0 ? spec.audiences.map(String) : [API_AUDIENCE];
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const accountMeta = obj(account.metadata);
  const claims: ServiceAccountClaims = {
    aud: audiences,
    exp: now + expirationSeconds,
    iat: now,
    iss: ISSUER,
    jti: randomUUID(),
    'kubernetes.io': { namespace, serviceaccount: { name, uid: String(accountMeta.uid ?? '') } },
    nbf: now,
    sub: serviceAccountUsername(namespace, name),
  };
  const ref = spec.boundObjectRef === undefined || spec.boundObjectRef === null ? undefined : obj(spec.boundObjectRef);
  if (ref) {
    const kind = String(ref.kind ?? '');
    const bindable = BINDABLE[kind];
    if (!bindable || (ref.apiVersion !== undefined && ref.apiVersion !== 'v1')) throw badRequest(`cannot bind token for object of type ${String(ref.apiVersion ?? '')}, Kind=${kind}`);
    const refName = String(ref.name ?? '');
    const object = lookup(bindable.storageKey, bindable.namespaced ? namespace : '', refName);
    if (!object) throw notFound({ group: '', plural: bindable.plural }, refName);
    const uid = String(obj(object.metadata).uid ?? '');
    if (typeof ref.uid === 'string' && ref.uid !== '' && ref.uid !== uid) {
      throw conflict({ group: '', plural: kind }, refName, `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
    }
    claims['kubernetes.io'][bindable.claim] = { name: refName, uid };
    if (kind === 'Pod') {
      // Since 1.30 a pod-bound token also names the pod's node.
      const nodeName = obj(object.spec).nodeName;
      const node = typeof nodeName === 'string' ? lookup('nodes', '', nodeName) : undefined;
      if (node) claims['kubernetes.io'].node = { name: String(nodeName), uid: String(obj(node.metadata).uid ?? '') };
    }
  }
  return {
    kind: 'TokenRequest',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { name, namespace, creationTimestamp: new Date(now * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
    status: { token: signer.sign(claims), expirationTimestamp: new Date(claims.exp * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
  };
}

function badKind(kind: string): never {
  throw new ApiError(400, 'BadRequest', `TokenRequest in version "v1" cannot be handled as a TokenRequest: the kind in the data (${kind}) does not match the expected kind (TokenRequest)`);
}

/** The root-ca-cert-publisher's ConfigMap for one namespace. */
export function rootCaConfigMap(namespace: string, caCertPem: string): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: ROOT_CA_CONFIGMAP, namespace, annotations: { 'kubernetes.io/description': ROOT_CA_DESCRIPTION } },
    data: { 'ca.crt': caCertPem },
  };
}
