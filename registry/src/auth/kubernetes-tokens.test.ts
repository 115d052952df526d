// ServiceAccount tokens against a small fake Kubernetes API server over HTTPS (its certificate
// signed by a test CA): TokenReview with audiences, as kube-apiserver answers it, and OIDC
// discovery with a JWKS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { issueCertificate, makeCertificateAuthority } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { InClusterApi, KubernetesUnavailableError, OidcVerifier, TokenReviewVerifier } from './kubernetes-tokens.ts';

const tempDir = tempDirs('nixery-k8s-tokens-');
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const AUDIENCE = 'nixery.dev/team-a/registry';
const REGISTRY_SA_TOKEN = 'the-registry-own-serviceaccount-token';

interface FakeApi {
  url: string;
  requests: string[];
  /** Tokens the API server issued (a real one would check them cryptographically; this one remembers them). */
  issued: Map<string, { username: string; audiences: string[] }>;
  signingKey: KeyObject;
  close(): Promise<void>;
}

/** The parts of kube-apiserver the registry uses, with kube-apiserver's answers. */
async function startFakeApi(cert: { cert: string; key: string }): Promise<FakeApi> {
  const { privateKey: signingKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const requests: string[] = [];
  const issued = new Map<string, { username: string; audiences: string[] }>();
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      const json = (status: number, value: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
      if (req.headers.authorization !== `Bearer ${REGISTRY_SA_TOKEN}`) return json(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
      if (req.method === 'POST' && req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
        const review = JSON.parse(body) as { spec: { token: string; audiences?: string[] } };
        const known = issued.get(review.spec.token);
        const wanted = review.spec.audiences ?? [];
        const audiences = known ? known.audiences.filter((a) => wanted.length === 0 || wanted.includes(a)) : [];
        const status = known && audiences.length
          ? { authenticated: true, user: { username: known.username, uid: 'u-1', groups: ['system:serviceaccounts'] }, audiences }
          : { authenticated: false, error: known ? 'token audiences ["other"] is invalid for the target audiences' : 'invalid bearer token' };
        return json(201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: review.spec, status });
      }
      if (req.url === '/.well-known/openid-configuration') {
        // As a cluster with a public issuer answers: the key set's URL is the issuer's, not the API server's.
        return json(200, { issuer: ISSUER, jwks_uri: 'https://issuer.example.invalid/openid/v1/jwks', id_token_signing_alg_values_supported: ['ES256'] });
      }
      if (req.url === '/openid/v1/jwks') return json(200, { keys: [jwk] });
      json(404, { kind: 'Status', code: 404 });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    issued,
    signingKey,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A ServiceAccount token as the API server signs it. */
async function serviceAccountToken(api: FakeApi, namespace: string, name: string, options: { audiences?: string[]; expiresIn?: number } = {}): Promise<string> {
  const audiences = options.audiences ?? [AUDIENCE];
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ 'kubernetes.io': { namespace, serviceaccount: { name } } })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(audiences)
    .setSubject(`system:serviceaccount:${namespace}:${name}`)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 600))
    .sign(api.signingKey);
  api.issued.set(token, { username: `system:serviceaccount:${namespace}:${name}`, audiences });
  return token;
}

describe('Kubernetes ServiceAccount tokens', () => {
  let api: FakeApi;
  let accountDir: string;
  let wrongCaDir: string;

  before(async () => {
    const dir = await tempDir();
    const ca = await makeCertificateAuthority(path.join(dir, 'ca'));
    const serving = await issueCertificate(ca, path.join(dir, 'serving'), 'apiserver', { hosts: ['127.0.0.1'] });
    api = await startFakeApi(serving);
    accountDir = path.join(dir, 'serviceaccount');
    await fs.mkdir(accountDir);
    await fs.writeFile(path.join(accountDir, 'token'), REGISTRY_SA_TOKEN);
    await fs.writeFile(path.join(accountDir, 'ca.crt'), ca.cert);
    const otherCa = await makeCertificateAuthority(path.join(dir, 'other-ca'));
    wrongCaDir = path.join(dir, 'wrong-ca');
    await fs.mkdir(wrongCaDir);
    await fs.writeFile(path.join(wrongCaDir, 'token'), REGISTRY_SA_TOKEN);
    await fs.writeFile(path.join(wrongCaDir, 'ca.crt'), otherCa.cert);
  });
  after(() => api?.close());

  const reviewer = (dir = accountDir) => new TokenReviewVerifier({ api: new InClusterApi({ server: api.url, serviceAccountDir: dir }), audience: AUDIENCE });
  const reviews = () => api.requests.filter((r) => r.includes('tokenreviews')).length;

  describe('verified by TokenReview', () => {
    it('accept a token with the registry\'s audience as its ServiceAccount, and review it once', async () => {
      const verifier = reviewer();
      const token = await serviceAccountToken(api, 'team-a', 'nixery-build-tool');
      const before = reviews();
      assert.deepEqual(await verifier.verify(token), { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-a', name: 'nixery-build-tool' } });
      assert.deepEqual(await verifier.verify(token), { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-a', name: 'nixery-build-tool' } });
      assert.equal(reviews() - before, 1, 'the verdict is cached');
    });

    it('refuse a token for another audience, and one the API server does not know', async () => {
      const verifier = reviewer();
      const other = await serviceAccountToken(api, 'team-a', 'builder', { audiences: ['https://kubernetes.default.svc'] });
      const verdict = await verifier.verify(other);
      assert.equal(verdict.ok, false);
      assert.match(!verdict.ok ? verdict.message : '', /not accepted: token audiences/);
      const forged = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('system:serviceaccount:kube-system:admin').setExpirationTime('5m').sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      assert.deepEqual(await verifier.verify(forged), { ok: false, reason: 'invalid', message: 'the ServiceAccount token was not accepted: invalid bearer token' });
    });

    it('take an expired token as expired without asking', async () => {
      const verifier = reviewer();
      const token = await serviceAccountToken(api, 'team-a', 'builder', { expiresIn: -60 });
      const before = reviews();
      assert.deepEqual(await verifier.verify(token), { ok: false, reason: 'expired', message: 'the ServiceAccount token has expired' });
      assert.equal(reviews(), before);
    });

    it('cannot tell when the API server is not trusted or refuses the registry', async () => {
      const token = await serviceAccountToken(api, 'team-a', 'builder');
      await assert.rejects(reviewer(wrongCaDir).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /certificate/i.test(e.message));
      const dir = await tempDir();
      await fs.writeFile(path.join(dir, 'token'), 'not-the-registry');
      await fs.copyFile(path.join(accountDir, 'ca.crt'), path.join(dir, 'ca.crt'));
      await assert.rejects(reviewer(dir).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /refused with HTTP 401/.test(e.message));
      await assert.rejects(reviewer(path.join(dir, 'absent')).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /cannot read/.test(e.message));
    });
  });

  describe('verified with the OIDC discovery keys', () => {
    const oidc = () => new OidcVerifier({ api: new InClusterApi({ server: api.url, serviceAccountDir: accountDir }), audience: AUDIENCE });

    it('accept a token signed by the API server for the registry\'s audience', async () => {
      const token = await serviceAccountToken(api, 'team-b', 'builder');
      assert.deepEqual(await oidc().verify(token), { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-b', name: 'builder' } });
      assert.ok(api.requests.includes('GET /openid/v1/jwks'), 'the key set comes from the API server itself');
    });

    it('refuse another audience, an expired token and a foreign signature', async () => {
      const verifier = oidc();
      const wrongAudience = await verifier.verify(await serviceAccountToken(api, 'team-b', 'builder', { audiences: ['https://kubernetes.default.svc'] }));
      assert.deepEqual(wrongAudience, { ok: false, reason: 'invalid', message: `the token is not meant for this registry (audience "${AUDIENCE}")` });
      assert.equal((await verifier.verify(await serviceAccountToken(api, 'team-b', 'builder', { expiresIn: -60 }))).ok, false);
      const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('system:serviceaccount:team-b:builder').setExpirationTime('5m').sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      assert.equal((await verifier.verify(foreign)).ok, false);
    });
  });
});
