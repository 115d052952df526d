import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { AccessControl } from './access-control.ts';
import { ADMIN, ANONYMOUS, type Identity } from './identity.ts';
import { parsePolicy } from './policy.ts';
import { parseScopes, renderScope, ScopeError, MAX_SCOPES } from './scope.ts';
import { loadTokenKey, RegistryTokens, TokenKeyError } from './tokens.ts';

const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']) => key.export({ type: 'pkcs8', format: 'pem' }).toString();

describe('scopes', () => {
  it('parse repository scopes, merging one name and dropping what is not ours', () => {
    assert.deepEqual(parseScopes(['repository:team-a/tool:pull,push', 'repository:team-a/tool:delete', 'registry:catalog:*', 'repository:x:fly,pull']), [
      { type: 'repository', name: 'team-a/tool', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'x', actions: ['pull'] },
    ]);
    assert.deepEqual(parseScopes(['repository:a:* repository:b:pull']), [
      { type: 'repository', name: 'a', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'b', actions: ['pull'] },
    ], 'the OAuth2 form separates scopes with spaces');
    assert.deepEqual(parseScopes(['', 'repository', 'repository:nameonly']), []);
  });

  it('render as a challenge names them', () => {
    assert.equal(renderScope([{ type: 'repository', name: 'a', actions: ['pull', 'push'] }, { type: 'repository', name: 'b', actions: ['pull'] }]), 'repository:a:pull,push repository:b:pull');
  });

  it('are bounded in number', () => {
    assert.throws(() => parseScopes(Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `repository:r${i}:pull`)), ScopeError);
  });
});

describe('registry tokens', () => {
  it('carry the subject and the access they were issued with', async () => {
    const tokens = new RegistryTokens();
    const issued = await tokens.issue('user:alice', [{ type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] }]);
    assert.equal(issued.expiresIn, 300);
    assert.ok(tokens.isRegistryToken(issued.token));
    assert.deepEqual(await tokens.verify(issued.token), { ok: true, subject: 'user:alice', access: [{ type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] }] });
    const [header, payload] = issued.token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>);
    assert.equal(header!.alg, 'ES256');
    assert.equal(payload!.iss, 'nixery');
    assert.equal(payload!.aud, 'nixery');
    assert.equal((payload!.exp as number) - (payload!.iat as number), 300);
  });

  it('expire', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const tokens = new RegistryTokens({ ttlSeconds: 60, now: () => now });
    const { token } = await tokens.issue('admin', []);
    now += 59_000;
    assert.equal((await tokens.verify(token)).ok, true);
    now += 10_000;
    assert.deepEqual(await tokens.verify(token), { ok: false, reason: 'expired', message: 'the registry token has expired: get a new one from the realm' });
  });

  it('are refused when tampered with, signed by another key, or meant for another audience', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const tokens = new RegistryTokens({ key });
    const { token } = await tokens.issue('user:alice', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { access: { actions: string[] }[] };
    claims.access[0]!.actions.push('push');
    const widened = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    assert.deepEqual(await tokens.verify(widened), { ok: false, reason: 'invalid', message: 'the registry token is not valid (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)' });

    const stranger = await new RegistryTokens().issue('admin', []);
    assert.equal((await tokens.verify(stranger.token)).ok, false, 'another process\'s key');

    const sign = (claims: Record<string, unknown>, audience: string) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).setIssuer('nixery').setAudience(audience).setSubject('admin').setIssuedAt().setExpirationTime('5m').sign(key);
    assert.deepEqual(await tokens.verify(await sign({ access: [] }, 'elsewhere')), { ok: false, reason: 'invalid', message: 'the registry token is not valid (ERR_JWT_CLAIM_VALIDATION_FAILED)' });
    assert.equal((await tokens.verify(await sign({ access: 'everything' }, 'nixery'))).ok, false, 'a malformed access claim');
    assert.deepEqual(await tokens.verify(await sign({ access: [] }, 'nixery')), { ok: true, subject: 'admin', access: [] });
  });

  it('are signed by a shared key from a PEM file, which must be EC P-256', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const one = new RegistryTokens({ key: loadTokenKey(pem(key), 'key.pem') });
    const other = new RegistryTokens({ key: loadTokenKey(pem(key), 'key.pem') });
    assert.equal((await other.verify((await one.issue('admin', [])).token)).ok, true, 'a replica accepts another\'s token');
    assert.throws(() => loadTokenKey('not a key', 'key.pem'), (e: unknown) => e instanceof TokenKeyError && /key\.pem: not a PEM private key/.test(e.message));
    assert.throws(() => loadTokenKey(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey), 'key.pem'), /expected an EC P-256 private key \(ES256\), got ec secp384r1/);
    assert.throws(() => loadTokenKey(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), 'key.pem'), /got rsa/);
  });
});

describe('what a token may carry: requested ∩ allowed', () => {
  const alice: Identity = { kind: 'user', name: 'alice' };
  const policy = () => parsePolicy(JSON.stringify({ rules: [{ repositories: ['team-a/**'], users: ['alice'], actions: ['pull', 'push'] }] }));
  const requested = parseScopes(['repository:team-a/tool:pull,push,delete', 'repository:shell:pull,push', 'repository:team-b/x:pull']);

  it('grants the requested actions the identity has, and nothing else', async () => {
    const access = new AccessControl({ policy, anonymousPull: false });
    assert.deepEqual(await access.grant(alice, requested), [{ type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] }]);
    assert.deepEqual(await access.grant(ANONYMOUS, requested), []);
    assert.deepEqual(await access.grant(ADMIN, parseScopes(['repository:team-b/x:delete'])), [{ type: 'repository', name: 'team-b/x', actions: ['delete'] }], 'only what was asked');
    assert.deepEqual(await access.grant(ADMIN, parseScopes(['repository:Bad..Name:pull'])), [], 'never an invalid name');
  });

  it('with anonymous pulls on, pulls for everyone', async () => {
    const access = new AccessControl({ policy, anonymousPull: true });
    assert.deepEqual(await access.grant(alice, requested), [
      { type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] },
      { type: 'repository', name: 'shell', actions: ['pull'] },
      { type: 'repository', name: 'team-b/x', actions: ['pull'] },
    ]);
    assert.deepEqual(await access.grant(ANONYMOUS, requested), [
      { type: 'repository', name: 'team-a/tool', actions: ['pull'] },
      { type: 'repository', name: 'shell', actions: ['pull'] },
      { type: 'repository', name: 'team-b/x', actions: ['pull'] },
    ]);
  });
});
