// ServiceAccount tokens against a small fake Kubernetes API server over HTTPS (test-support.ts):
// TokenReview with audiences, as kube-apiserver answers it, and OIDC discovery with a JWKS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT } from 'jose';
import { makeCertificateAuthority } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { InClusterApi, KubernetesUnavailableError, OidcVerifier, TokenReviewVerifier } from './kubernetes-tokens.ts';
import { FAKE_ISSUER, startFakeKubernetesApi, type FakeKubernetesApi } from './test-support.ts';

const tempDir = tempDirs('nixery-k8s-tokens-');
const AUDIENCE = 'nixery.dev/team-a/registry';

/** A token some other signer made, claiming to be one the API server issued. */
const forged = (subject: string) =>
  new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(FAKE_ISSUER).setAudience(AUDIENCE).setSubject(subject).setExpirationTime('5m').sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);

describe('Kubernetes ServiceAccount tokens', () => {
  let api: FakeKubernetesApi;

  before(async () => {
    api = await startFakeKubernetesApi(await tempDir());
  });
  after(() => api?.close());

  const reviewer = (dir = api.serviceAccountDir) => new TokenReviewVerifier({ api: new InClusterApi({ server: api.url, serviceAccountDir: dir }), audience: AUDIENCE });
  const reviews = () => api.requests.filter((r) => r.includes('tokenreviews')).length;

  describe('verified by TokenReview', () => {
    it('accept a token with the registry\'s audience as its ServiceAccount, and review it once', async () => {
      const verifier = reviewer();
      const token = await api.serviceAccountToken('team-a', 'nixery-build-tool', { audiences: [AUDIENCE] });
      const before = reviews();
      const builder = { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-a', name: 'nixery-build-tool' } };
      assert.deepEqual(await verifier.verify(token), builder);
      assert.deepEqual(await verifier.verify(token), builder);
      assert.equal(reviews() - before, 1, 'the verdict is cached');
    });

    it('refuse a token for another audience, and one the API server did not issue', async () => {
      const verifier = reviewer();
      const verdict = await verifier.verify(await api.serviceAccountToken('team-a', 'builder'));
      assert.equal(verdict.ok, false);
      assert.match(!verdict.ok ? verdict.message : '', /not accepted: token audiences .* is invalid for the target audiences \["nixery\.dev\/team-a\/registry"\]/);
      assert.deepEqual(await verifier.verify(await forged('system:serviceaccount:kube-system:admin')), { ok: false, reason: 'invalid', message: 'the ServiceAccount token was not accepted: invalid bearer token' });
    });

    it('take an expired token as expired without asking', async () => {
      const token = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE], expiresIn: -60 });
      const before = reviews();
      assert.deepEqual(await reviewer().verify(token), { ok: false, reason: 'expired', message: 'the ServiceAccount token has expired' });
      assert.equal(reviews(), before);
    });

    it('cannot tell when the API server is not trusted, refuses the registry, or the mounted files are missing', async () => {
      const token = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE] });
      const dir = await tempDir();
      const otherCa = await makeCertificateAuthority(path.join(dir, 'other-ca'));
      const untrusting = path.join(dir, 'untrusting');
      await fs.mkdir(untrusting);
      await fs.copyFile(path.join(api.serviceAccountDir, 'token'), path.join(untrusting, 'token'));
      await fs.writeFile(path.join(untrusting, 'ca.crt'), otherCa.cert);
      await assert.rejects(reviewer(untrusting).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /certificate/i.test(e.message));
      const stranger = path.join(dir, 'stranger');
      await fs.mkdir(stranger);
      await fs.writeFile(path.join(stranger, 'token'), 'not-the-registry');
      await fs.copyFile(path.join(api.serviceAccountDir, 'ca.crt'), path.join(stranger, 'ca.crt'));
      await assert.rejects(reviewer(stranger).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /refused with HTTP 401/.test(e.message));
      await assert.rejects(reviewer(path.join(dir, 'absent')).verify(token), (e: unknown) => e instanceof KubernetesUnavailableError && /cannot read/.test(e.message));
    });
  });

  describe('verified with the OIDC discovery keys', () => {
    const oidc = () => new OidcVerifier({ api: new InClusterApi({ server: api.url, serviceAccountDir: api.serviceAccountDir }), audience: AUDIENCE });

    it('accept a token signed by the API server for the registry\'s audience', async () => {
      const token = await api.serviceAccountToken('team-b', 'builder', { audiences: [AUDIENCE] });
      assert.deepEqual(await oidc().verify(token), { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-b', name: 'builder' } });
      assert.ok(api.requests.includes('GET /openid/v1/jwks'), 'the key set comes from the API server itself');
    });

    it('refuse another audience, an expired token and a foreign signature', async () => {
      const verifier = oidc();
      assert.deepEqual(await verifier.verify(await api.serviceAccountToken('team-b', 'builder')), { ok: false, reason: 'invalid', message: `the token is not meant for this registry (audience "${AUDIENCE}")` });
      assert.equal((await verifier.verify(await api.serviceAccountToken('team-b', 'builder', { audiences: [AUDIENCE], expiresIn: -60 }))).ok, false);
      assert.equal((await verifier.verify(await forged('system:serviceaccount:team-b:builder'))).ok, false);
    });
  });
});
