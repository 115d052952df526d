// ServiceAccount tokens against a small fake Kubernetes API server over HTTPS (test-support.ts):
// TokenReview with audiences, as kube-apiserver answers it, and OIDC discovery with a JWKS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT } from 'jose';
import { makeCertificateAuthority } from '@nixery/test-support';
import { RateLimiter } from '../cache/rate-limiter.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { Authenticator, CredentialCheckLimitError } from './identity.ts';
import { InClusterApi, KubernetesUnavailableError, OidcVerifier, TokenReviewVerifier } from './kubernetes-tokens.ts';
import { RegistryTokens } from './tokens.ts';
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

    it('call beforeCostlyCheck right before each TokenReview, not for a cached verdict or an expired token; a throw prevents the review', async () => {
      const verifier = reviewer();
      let charged = 0;
      const charge = () => {
        charged++;
      };
      const token = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE] });
      const stranger = await forged('system:serviceaccount:team-a:builder');
      const expired = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE], expiresIn: -60 });
      for (const jwt of [token, token, stranger, stranger, expired]) await verifier.verify(jwt, charge);
      assert.equal(charged, 2, 'one each for the two new tokens; their verdicts, accepted or refused, are cached');
      const fresh = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE] });
      const refusal = new CredentialCheckLimitError('192.0.2.1', 1, 60);
      await assert.rejects(verifier.verify(fresh, () => { throw refusal; }), (e: unknown) => e === refusal);
      assert.ok(!api.reviewed.includes(fresh), 'no TokenReview for the refused check');
    });

    it('bound new tokens per client (through the Authenticator); cached verdicts cost nothing', async () => {
      const clock = { ms: 0 };
      const authenticator = new Authenticator({ tokens: new RegistryTokens(), serviceAccounts: reviewer(), checkLimit: new RateLimiter({ perMinute: 2, now: () => clock.ms }) });
      const bearer = (token: string, client: string) => authenticator.authenticate({ scheme: 'bearer', token }, client);
      const [first, second, third] = await Promise.all(['one', 'two', 'three'].map((name) => api.serviceAccountToken('team-a', name, { audiences: [AUDIENCE] })));
      const before = reviews();
      assert.equal((await bearer(first!, '192.0.2.1')).ok, true);
      assert.equal((await bearer(second!, '192.0.2.1')).ok, true);
      await assert.rejects(bearer(third!, '192.0.2.1'), (e: unknown) => e instanceof CredentialCheckLimitError && e.client === '192.0.2.1' && e.retryAfterSeconds === 30);
      assert.equal(reviews() - before, 2, 'the third token was not reviewed');
      for (const token of [first!, second!, first!]) assert.equal((await bearer(token, '192.0.2.1')).ok, true, 'cached verdicts');
      assert.equal((await authenticator.authenticate({ scheme: 'basic', username: 'serviceaccount', password: third! }, '192.0.2.2')).ok, true, 'another client');
      assert.equal((await bearer(third!, '192.0.2.1')).ok, true, 'its verdict now cached, for every client');
      assert.equal(reviews() - before, 3);
      clock.ms += 30_000;
      const fourth = await api.serviceAccountToken('team-a', 'four', { audiences: [AUDIENCE] });
      assert.equal((await bearer(fourth, '192.0.2.1')).ok, true, 'a check given back after 30 s');
      assert.equal(reviews() - before, 4);
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
