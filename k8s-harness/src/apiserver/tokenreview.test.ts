// Delegated authentication, as a server in the cluster uses it: TokenReview (client-node and
// kubectl), the bootstrap ClusterRoles that grant it and issuer discovery, and the issuer's
// OpenID discovery document and keys, against which a projected token verifies with `jose`
// without asking the API server.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthenticationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { V1Pod, V1TokenReview } from '@kubernetes/client-node';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { authenticateToken, type Lookup } from './auth.ts';
import { rbacAllows, type PolicyRule } from './index.ts';
import { startTestServer, type TestServer } from './testing.ts';
import { API_AUDIENCE, decodeTokenPayload, ISSUER, TokenSigner, type ServiceAccountClaims } from './tokens.ts';

const AUDIENCE = 'nixery.dev/team-a/registry';

function clients(kubeconfigPath: string, token?: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  if (token !== undefined) kc.loadFromClusterAndUser(kc.getCurrentCluster()!, { name: 'bearer', token });
  return { core: kc.makeApiClient(CoreV1Api), authn: kc.makeApiClient(AuthenticationV1Api), rbac: kc.makeApiClient(RbacAuthorizationV1Api) };
}

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    return { code: e.code ?? -1, message: typeof e.body === 'string' ? ((JSON.parse(e.body) as { message?: string }).message ?? '') : '' };
  }
  throw new Error('the request succeeded');
}

function get(url: string, ca: string, token?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('TokenReview and service account issuer discovery', () => {
  let t: TestServer;
  let admin: ReturnType<typeof clients>;
  let pod: V1Pod;
  // client-node answers with class instances: compared as the JSON they came from
  const review = async (token: string, audiences?: string[]) =>
    JSON.parse(JSON.stringify((await admin.authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences ? { audiences } : {}) } } })).status)) as NonNullable<V1TokenReview['status']>;
  const tokenFor = async (account: string, spec: { audiences?: string[]; pod?: V1Pod } = {}) =>
    (
      await admin.core.createNamespacedServiceAccountToken({
        name: account,
        namespace: 'team-a',
        body: {
          spec: {
            audiences: spec.audiences ?? [],
            ...(spec.pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: spec.pod.metadata!.name!, uid: spec.pod.metadata!.uid! } } : {}),
          },
        },
      })
    ).status?.token ?? '';

  before(async () => {
    t = await startTestServer();
    admin = clients(t.server.kubeconfigPath);
    await admin.core.createNamespace({ body: { metadata: { name: 'team-a' } } });
    await admin.core.createNamespacedServiceAccount({ namespace: 'team-a', body: { metadata: { name: 'builder' } } });
    pod = await admin.core.createNamespacedPod({ namespace: 'team-a', body: { metadata: { name: 'build-1' }, spec: { serviceAccountName: 'builder', containers: [{ name: 'c', image: 'x' }] } } });
  });
  after(async () => {
    await t?.stop();
  });

  it('discovery lists tokenreviews in authentication.k8s.io/v1 with the one verb create', async () => {
    const resources = await t.kubectlOk(['api-resources', '--api-group=authentication.k8s.io', '-o', 'wide', '--no-headers']);
    assert.match(resources, /^tokenreviews\s+authentication\.k8s\.io\/v1\s+false\s+TokenReview\s+create\b/m);
    const list = JSON.parse(await t.kubectlOk(['get', '--raw', '/apis/authentication.k8s.io/v1'])) as { resources: Array<{ name: string; verbs: string[]; namespaced: boolean }> };
    assert.deepEqual(list.resources.find((r) => r.name === 'tokenreviews'), { name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create'] });
  });

  it("a pod-bound token: authenticated as its service account, with the pod and the token's id in extra, for the API server's audience", async () => {
    const token = await tokenFor('builder', { pod });
    const account = await admin.core.readNamespacedServiceAccount({ name: 'builder', namespace: 'team-a' });
    const claims = decodeTokenPayload(token) as unknown as ServiceAccountClaims;
    const mark = t.server.requestLog.length;
    const status = await review(token);
    assert.deepEqual(status, {
      authenticated: true,
      user: {
        username: 'system:serviceaccount:team-a:builder',
        uid: account.metadata!.uid,
        groups: ['system:serviceaccounts', 'system:serviceaccounts:team-a', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/pod-name': ['build-1'],
          'authentication.kubernetes.io/pod-uid': [pod.metadata!.uid!],
          'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`],
        },
      },
      audiences: [API_AUDIENCE],
    });
    const [entry] = t.server.requestLog.slice(mark);
    assert.deepEqual(
      { verb: entry?.verb, user: entry?.user, apiGroup: entry?.apiGroup, resource: entry?.resource, resourceRequest: entry?.resourceRequest },
      { verb: 'create', user: 'admin', apiGroup: 'authentication.k8s.io', resource: 'tokenreviews', resourceRequest: true },
    );
  });

  it("audiences: the review's audiences must meet the token's; the answer names those they share; none asked means the API server's", async () => {
    const token = await tokenFor('builder', { audiences: [AUDIENCE, 'other'] });
    const shared = await review(token, ['something-else', AUDIENCE]);
    assert.equal(shared.authenticated, true);
    assert.deepEqual(shared.audiences, [AUDIENCE]);
    assert.deepEqual(Object.keys(shared.user?.extra ?? {}), ['authentication.kubernetes.io/credential-id'], 'a token bound to nothing names no pod');
    assert.deepEqual(await review(token), {
      user: {},
      error: `[invalid bearer token, token audiences ["${AUDIENCE}" "other"] is invalid for the target audiences ["${API_AUDIENCE}"]]`,
    });
    assert.equal((await review(token, ['nixery.dev/team-b/registry'])).authenticated, undefined);
    // A token for another audience is no credential for the API server itself.
    assert.equal((await failure(clients(t.server.kubeconfigPath, token).core.listNamespacedPod({ namespace: 'team-a' }))).code, 401);
  });

  it('a token whose pod is gone, whose account is gone or was made again, or that nobody issued, is not authenticated, with the reason', async () => {
    await admin.core.createNamespacedServiceAccount({ namespace: 'team-a', body: { metadata: { name: 'short-lived' } } });
    const holder = await admin.core.createNamespacedPod({ namespace: 'team-a', body: { metadata: { name: 'holder' }, spec: { serviceAccountName: 'short-lived', containers: [{ name: 'c', image: 'x' }] } } });
    const podToken = await tokenFor('short-lived', { pod: holder, audiences: [AUDIENCE] });
    const accountToken = await tokenFor('short-lived', { audiences: [AUDIENCE] });
    assert.equal((await review(podToken, [AUDIENCE])).authenticated, true);

    await admin.core.deleteNamespacedPod({ name: 'holder', namespace: 'team-a' });
    assert.deepEqual(await review(podToken, [AUDIENCE]), { user: {}, error: '[invalid bearer token, service account token has been invalidated]' });
    assert.equal((await review(accountToken, [AUDIENCE])).authenticated, true);

    const old = await admin.core.readNamespacedServiceAccount({ name: 'short-lived', namespace: 'team-a' });
    await admin.core.deleteNamespacedServiceAccount({ name: 'short-lived', namespace: 'team-a' });
    assert.deepEqual(await review(accountToken, [AUDIENCE]), { user: {}, error: '[invalid bearer token, serviceaccounts "short-lived" not found]' });
    const again = await admin.core.createNamespacedServiceAccount({ namespace: 'team-a', body: { metadata: { name: 'short-lived' } } });
    assert.deepEqual(await review(accountToken, [AUDIENCE]), {
      user: {},
      error: `[invalid bearer token, service account UID (${again.metadata!.uid}) does not match claim (${old.metadata!.uid})]`,
    });

    assert.deepEqual(await review('made-up'), { user: {}, error: 'invalid bearer token' });
    const [header, payload, signature] = accountToken.split('.');
    const other = Buffer.from(JSON.stringify({ ...decodeTokenPayload(accountToken), sub: 'system:serviceaccount:kube-system:default' })).toString('base64url');
    assert.deepEqual(await review(`${header}.${other}.${signature}`, [AUDIENCE]), { user: {}, error: '[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]' });
    assert.equal(payload !== other, true);
  });

  it("the kubeconfig's static token is reviewed as its user, for whatever audience was asked", async () => {
    const token = await readKubeconfigToken(t.server.kubeconfigPath);
    const status = await review(token, [AUDIENCE]);
    assert.deepEqual(status, { authenticated: true, user: { username: 'admin', groups: ['system:masters', 'system:authenticated'] }, audiences: [AUDIENCE] });
  });

  it('kubectl create -f a TokenReview prints the review with its status; an empty token is a bad request; reviews are never stored', async () => {
    const token = await tokenFor('builder', { audiences: [AUDIENCE] });
    const manifest = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [AUDIENCE] } });
    const answer = JSON.parse(await t.kubectlOk(['create', '-f', '-', '-o', 'json'], manifest)) as V1TokenReview;
    assert.equal(answer.kind, 'TokenReview');
    assert.equal(answer.spec.token, token);
    assert.equal(answer.status?.authenticated, true);
    assert.equal(answer.status?.user?.username, 'system:serviceaccount:team-a:builder');
    assert.deepEqual(answer.status?.audiences, [AUDIENCE]);

    const empty = await t.kubectl(['create', '-f', '-', '-o', 'json'], JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: {} }));
    assert.notEqual(empty.code, 0);
    assert.match(empty.stderr, /token is required for TokenReview/);

    const listed = await get(`${t.server.url}/apis/authentication.k8s.io/v1/tokenreviews`, t.server.caCertPem, await readKubeconfigToken(t.server.kubeconfigPath));
    assert.equal(listed.status, 405);
    assert.equal((JSON.parse(listed.body) as { reason: string }).reason, 'MethodNotAllowed');
  });

  it('expiry and not-before are judged with upstream\'s minute of leeway; a token signed by another key is refused', () => {
    const signer = TokenSigner.load();
    const objects: Record<string, Record<string, unknown>> = { 'serviceaccounts/ns/sa': { metadata: { name: 'sa', uid: 'sa-uid' } } };
    const lookup: Lookup = (key, ns, name) => objects[`${key}/${ns}/${name}`];
    const claims = (over: Partial<ServiceAccountClaims>): ServiceAccountClaims => ({
      iss: ISSUER,
      sub: 'system:serviceaccount:ns:sa',
      aud: [AUDIENCE],
      iat: 1000,
      nbf: 1000,
      exp: 2000,
      jti: 'id-1',
      'kubernetes.io': { namespace: 'ns', serviceaccount: { name: 'sa', uid: 'sa-uid' } },
      ...over,
    });
    const at = (now: number, token = signer.sign(claims({}))) => {
      const result = authenticateToken(token, signer, lookup, [AUDIENCE], now);
      return { user: result.user, error: result.user ? undefined : result.error };
    };
    assert.equal(at(2059).user?.username, 'system:serviceaccount:ns:sa');
    assert.equal(at(2061).error, '[invalid bearer token, service account token has expired]');
    assert.equal(at(941).user?.username, 'system:serviceaccount:ns:sa');
    assert.equal(at(939).error, '[invalid bearer token, service account token is not valid yet]');
    assert.deepEqual(at(1500).user?.extra, { 'authentication.kubernetes.io/credential-id': ['JTI=id-1'] });
    assert.equal(at(1500, TokenSigner.load().sign(claims({}))).error, '[invalid bearer token, invalid signature, no keys found]');
  });

  it('bootstraps system:auth-delegator and the issuer discovery role, bound to every service account, as kube-apiserver does', async () => {
    const delegator = await admin.rbac.readClusterRole({ name: 'system:auth-delegator' });
    assert.equal(delegator.metadata?.annotations?.['rbac.authorization.kubernetes.io/autoupdate'], 'true');
    assert.equal(delegator.metadata?.labels?.['kubernetes.io/bootstrapping'], 'rbac-defaults');
    const rules = (delegator.rules ?? []) as PolicyRule[];
    const review = { verb: 'create', path: '/apis/authentication.k8s.io/v1/tokenreviews', resourceRequest: true, apiGroup: 'authentication.k8s.io', resource: 'tokenreviews' };
    assert.equal(rbacAllows(rules, review), true);
    assert.equal(rbacAllows(rules, { ...review, resource: 'tokenrequests' }), false);

    const discovery = await admin.rbac.readClusterRole({ name: 'system:service-account-issuer-discovery' });
    assert.equal(rbacAllows((discovery.rules ?? []) as PolicyRule[], { verb: 'get', resourceRequest: false, path: '/openid/v1/jwks' }), true);
    const binding = await admin.rbac.readClusterRoleBinding({ name: 'system:service-account-issuer-discovery' });
    assert.deepEqual({ ...binding.roleRef }, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:service-account-issuer-discovery' });
    assert.deepEqual(binding.subjects?.map((x) => ({ ...x })), [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:serviceaccounts' }]);

  });

  it('an auto-updated bootstrap role that lost a rule gets it back when the server starts again; rules added to it stay', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'apiserver-rbac-'));
    try {
      const first = await startTestServer({ dataDir });
      const rbac = clients(first.server.kubeconfigPath).rbac;
      const delegator = await rbac.readClusterRole({ name: 'system:auth-delegator' });
      const extra = { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] };
      await rbac.replaceClusterRole({ name: 'system:auth-delegator', body: { ...delegator, rules: [extra] } });
      await first.stop();
      const again = await startTestServer({ dataDir });
      try {
        const restored = await clients(again.server.kubeconfigPath).rbac.readClusterRole({ name: 'system:auth-delegator' });
        assert.deepEqual(JSON.parse(JSON.stringify(restored.rules)), JSON.parse(JSON.stringify([extra, ...(delegator.rules ?? [])])));
      } finally {
        await again.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('serves the OpenID discovery document and the signing key; a projected token verifies against them with jose', async () => {
    const token = await tokenFor('builder', { pod, audiences: [AUDIENCE] });
    // Read with the pod's API credential, as a pod in the cluster would (every service account may: the bootstrap binding).
    const config = await get(`${t.server.url}/.well-known/openid-configuration`, t.server.caCertPem, await tokenFor('builder', { pod }));
    assert.equal(config.status, 200);
    assert.equal(config.headers['content-type'], 'application/json');
    assert.equal(config.headers['cache-control'], 'public, max-age=3600');
    const document = JSON.parse(config.body) as { issuer: string; jwks_uri: string; id_token_signing_alg_values_supported: string[] };
    assert.deepEqual(document, {
      issuer: ISSUER,
      jwks_uri: `${t.server.url}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
    });
    const keys = await get(document.jwks_uri, t.server.caCertPem);
    assert.equal(keys.status, 200);
    assert.equal(keys.headers['content-type'], 'application/jwk-set+json');
    const jwks = JSON.parse(keys.body) as { keys: Array<Record<string, string>> };
    assert.deepEqual(jwks.keys.map((k) => [k.kty, k.crv, k.alg, k.use, k.kid]), [['EC', 'P-256', 'ES256', 'sig', decodeProtectedHeader(token).kid]]);

    const verified = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: document.issuer, audience: AUDIENCE, algorithms: document.id_token_signing_alg_values_supported });
    assert.equal(verified.payload.sub, 'system:serviceaccount:team-a:builder');
    await assert.rejects(jwtVerify(token, createLocalJWKSet(jwks), { issuer: document.issuer, audience: 'nixery.dev/team-b/registry' }), /aud/);
    const [h, p, s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...decodeTokenPayload(token), sub: 'system:serviceaccount:team-a:admin' })).toString('base64url');
    assert.equal(p === forged, false);
    await assert.rejects(jwtVerify(`${h}.${forged}.${s}`, createLocalJWKSet(jwks)), /signature verification failed/);
  });
});

async function readKubeconfigToken(kubeconfigPath: string): Promise<string> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const token = kc.getCurrentUser()?.token;
  if (!token) throw new Error('the kubeconfig has no token');
  return token;
}
