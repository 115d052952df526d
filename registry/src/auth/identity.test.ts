import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../cache/rate-limiter.ts';
import { Authenticator, CredentialCheckLimitError, identityFromName, identityName, looksLikeJwt, parseAuthorization, type Identity, type ServiceAccountVerifier, type UserDirectory } from './identity.ts';
import { RegistryTokens } from './tokens.ts';

const ADMIN_TOKEN = 'the-administrator-token-0123456789';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const users: UserDirectory = {
  verify: async (user, password) => (user !== 'alice' ? 'unknown' : password === 'wonderland' ? 'valid' : 'invalid'),
};
/** Accepts one made-up JWT as team-a's builder. */
const K8S_TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJrOHMifQ.c2lnbmF0dXJl';
const serviceAccounts: ServiceAccountVerifier = {
  verify: async (jwt) =>
    jwt === K8S_TOKEN ? { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-a', name: 'builder' } } : { ok: false, reason: 'invalid', message: 'the ServiceAccount token was not accepted' },
};

describe('identities', () => {
  it('have the names logs show and tokens carry, and back', () => {
    const identities: [Identity, string][] = [
      [{ kind: 'admin' }, 'admin'],
      [{ kind: 'anonymous' }, 'anonymous'],
      [{ kind: 'user', name: 'alice' }, 'user:alice'],
      [{ kind: 'serviceAccount', namespace: 'team-a', name: 'builder' }, 'system:serviceaccount:team-a:builder'],
    ];
    for (const [identity, name] of identities) {
      assert.equal(identityName(identity), name);
      assert.deepEqual(identityFromName(name), identity);
    }
    for (const bad of ['', 'user:', 'root', 'system:serviceaccount:ns', 'system:serviceaccount:ns:a:b']) assert.equal(identityFromName(bad), undefined, bad);
  });

  it('come from Authorization headers in the schemes registries use', () => {
    assert.deepEqual(parseAuthorization(undefined), { scheme: 'none' });
    assert.deepEqual(parseAuthorization(basic('alice', 'pass:with:colons')), { scheme: 'basic', username: 'alice', password: 'pass:with:colons' });
    assert.deepEqual(parseAuthorization('bearer abc'), { scheme: 'bearer', token: 'abc' });
    assert.deepEqual(parseAuthorization('Digest x'), { scheme: 'unsupported' });
    assert.deepEqual(parseAuthorization(`Basic ${Buffer.from('nocolon').toString('base64')}`), { scheme: 'unsupported' });
    assert.ok(looksLikeJwt(K8S_TOKEN));
    assert.ok(!looksLikeJwt(ADMIN_TOKEN));
  });
});

describe('who a credential is', () => {
  const tokens = new RegistryTokens();
  const authenticator = new Authenticator({ adminToken: ADMIN_TOKEN, users, serviceAccounts, tokens });
  const who = async (header: string | undefined) => authenticator.authenticate(parseAuthorization(header));

  it('the push token is the administrator, as a bearer token or the password of any user', async () => {
    assert.deepEqual(await who(`Bearer ${ADMIN_TOKEN}`), { ok: true, identity: { kind: 'admin' } });
    assert.deepEqual(await who(basic('anyone', ADMIN_TOKEN)), { ok: true, identity: { kind: 'admin' } });
    assert.deepEqual(await who(basic('alice', ADMIN_TOKEN)), { ok: true, identity: { kind: 'admin' } });
  });

  it('htpasswd users by their password; wrong credentials are refused', async () => {
    assert.deepEqual(await who(basic('alice', 'wonderland')), { ok: true, identity: { kind: 'user', name: 'alice' } });
    assert.deepEqual(await who(basic('alice', 'nope')), { ok: false, reason: 'invalid', message: 'wrong password for user "alice"' });
    assert.deepEqual(await who(basic('mallory', 'nope')), { ok: false, reason: 'invalid', message: 'unknown user name or password' });
    assert.deepEqual(await who('Bearer not-a-token'), { ok: false, reason: 'invalid', message: 'the bearer token is not valid' });
    assert.equal((await who('Digest x')).ok, false);
  });

  it('Kubernetes tokens as the Basic password of any user, or as a bearer token', async () => {
    const builder = { ok: true, identity: { kind: 'serviceAccount', namespace: 'team-a', name: 'builder' } };
    assert.deepEqual(await who(basic('serviceaccount', K8S_TOKEN)), builder);
    assert.deepEqual(await who(`Bearer ${K8S_TOKEN}`), builder);
    assert.equal((await who(`Bearer ${K8S_TOKEN.replace('c2ln', 'c2lo')}`)).ok, false);
  });

  it('registry tokens as their subject, limited to their access', async () => {
    const { token } = await tokens.issue('user:alice', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    assert.deepEqual(await who(`Bearer ${token}`), { ok: true, identity: { kind: 'user', name: 'alice' }, access: [{ type: 'repository', name: 'a', actions: ['pull'] }] });
    const foreign = await new RegistryTokens().issue('admin', []);
    assert.equal((await who(`Bearer ${foreign.token}`)).ok, false, 'signed by another key: not ours, and no Kubernetes token either');
  });

  it('nothing is the anonymous client', async () => {
    assert.deepEqual(await who(undefined), { ok: true, identity: { kind: 'anonymous' } });
  });

  it('without a push token there is no administrator, and without Kubernetes no ServiceAccount', async () => {
    const plain = new Authenticator({ tokens });
    assert.equal((await plain.authenticate(parseAuthorization(`Bearer ${ADMIN_TOKEN}`))).ok, false);
    assert.equal((await plain.authenticate(parseAuthorization(basic('serviceaccount', K8S_TOKEN)))).ok, false);
  });
});

describe('the per-client bound on costly credential checks', () => {
  const tokens = new RegistryTokens();
  /** Every check costly, as a first-time bcrypt compare or TokenReview is. */
  const costlyUsers: UserDirectory = {
    verify: async (user, password, beforeCostlyCheck) => {
      if (user !== 'alice') return 'unknown';
      beforeCostlyCheck?.();
      return password === 'wonderland' ? 'valid' : 'invalid';
    },
  };
  const costlyServiceAccounts: ServiceAccountVerifier = {
    verify: async (jwt, beforeCostlyCheck) => {
      beforeCostlyCheck?.();
      return serviceAccounts.verify(jwt);
    },
  };
  const limited = () =>
    new Authenticator({ adminToken: ADMIN_TOKEN, users: costlyUsers, serviceAccounts: costlyServiceAccounts, tokens, checkLimit: new RateLimiter({ perMinute: 1, now: () => 0 }) });
  const spent = (client: string) => (error: unknown) => error instanceof CredentialCheckLimitError && error.client === client && error.perMinute === 1 && error.retryAfterSeconds === 60;

  it('refuse a client\'s costly check beyond its allowance, Basic password or Kubernetes token alike', async () => {
    const authenticator = limited();
    assert.equal((await authenticator.authenticate(parseAuthorization(basic('alice', 'nope')), '192.0.2.1')).ok, false);
    await assert.rejects(authenticator.authenticate(parseAuthorization(basic('alice', 'wonderland')), '192.0.2.1'), spent('192.0.2.1'));
    await assert.rejects(authenticator.authenticate(parseAuthorization(`Bearer ${K8S_TOKEN}`), '192.0.2.1'), spent('192.0.2.1'));
    await assert.rejects(authenticator.authenticate(parseAuthorization(basic('serviceaccount', K8S_TOKEN)), '192.0.2.1'), spent('192.0.2.1'));
    assert.equal((await authenticator.authenticate(parseAuthorization(`Bearer ${K8S_TOKEN}`), '192.0.2.2')).ok, true, 'another client');
  });

  it('charge nothing for the push token, the registry\'s own tokens, an unknown user or no credential', async () => {
    const authenticator = limited();
    const who = (header: string | undefined) => authenticator.authenticate(parseAuthorization(header), '192.0.2.1');
    assert.equal((await who(basic('alice', 'nope'))).ok, false);
    const { token } = await tokens.issue('user:alice', []);
    for (let i = 0; i < 3; i++) {
      assert.equal((await who(`Bearer ${ADMIN_TOKEN}`)).ok, true);
      assert.equal((await who(basic('alice', ADMIN_TOKEN))).ok, true);
      assert.equal((await who(`Bearer ${token}`)).ok, true);
      assert.equal((await who(undefined)).ok, true);
      assert.equal((await who(basic('mallory', 'x'))).ok, false);
      assert.equal((await who('Bearer not-a-token')).ok, false);
    }
    await assert.rejects(who(basic('alice', 'nope')), spent('192.0.2.1'));
  });

  it('count checks without a client under one shared name', async () => {
    const authenticator = limited();
    assert.equal((await authenticator.authenticate(parseAuthorization(basic('alice', 'nope')))).ok, false);
    await assert.rejects(authenticator.authenticate(parseAuthorization(basic('alice', 'nope'))), spent('unknown'));
  });
});
