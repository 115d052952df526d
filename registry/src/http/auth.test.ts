// Authentication and authorization through the whole HTTP app: the challenges, the token endpoint
// (GET and the OAuth2 form), scoped tokens, the policy, on-demand names, anonymous pulls off,
// ServiceAccount tokens against a fake Kubernetes API server, log lines without credentials, and
// the per-client bound on costly credential checks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { startFakeKubernetesApi, type FakeKubernetesApi } from '../auth/test-support.ts';
import { sha256Digest } from '../oci/image.ts';
import { deleteTag } from '../push/delete-tag.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { startAuthServer, TEST_ADMIN_TOKEN, TEST_AUDIENCE, type AuthServer } from './test-support.ts';

const tempDir = tempDirs('nixery-http-auth-');
const ADMIN_TOKEN = TEST_ADMIN_TOKEN;
const AUDIENCE = TEST_AUDIENCE;
const POLICY = {
  rules: [
    { repositories: ['team-a/**'], users: ['alice'], serviceAccounts: ['team-a/builder'], actions: ['pull', 'push', 'delete'] },
    { repositories: ['**'], users: ['carol'], actions: ['pull', 'push'] },
    { repositories: ['team-a/**'], users: ['bob'], actions: ['pull'] },
  ],
};

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (token: string) => `Bearer ${token}`;

/** The app with htpasswd users alice, bob, carol and dave, the policy above, and a token key of its own. */
const serve = async (options: { anonymousPull?: boolean; kubernetes?: FakeKubernetesApi; clientAuthChecksPerMinute?: number; checkLimitNow?: () => number } = {}): Promise<AuthServer> =>
  startAuthServer({ dir: await tempDir(), users: ['alice', 'bob', 'carol', 'dave'], policy: POLICY, ...options });

const errorOf = async (response: Response) => ((await response.json()) as { errors: { code: string; message: string }[] }).errors[0]!;

/** Pushes a one-blob OCI manifest as `name:tag` with `authorization`; resolves to the manifest PUT's answer (or the first refusal). */
async function push(url: string, name: string, tag: string, authorization: string | undefined): Promise<Response> {
  const headers: Record<string, string> = authorization ? { Authorization: authorization } : {};
  const config = Buffer.from(`{"name":"${name}"}`);
  const blob = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha256Digest(config)}`, { method: 'POST', headers, body: config });
  if (blob.status !== 201) return blob;
  const descriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length };
  return fetch(`${url}/v2/${name}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: descriptor, layers: [] }),
  });
}

/** A registry token from the realm for these scopes. */
async function token(url: string, authorization: string | undefined, ...scopes: string[]): Promise<string> {
  const query = new URLSearchParams([['service', 'nixery'], ...scopes.map((s): [string, string] => ['scope', s])]);
  const response = await fetch(`${url}/v2/token?${query}`, { headers: authorization ? { Authorization: authorization } : {} });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { token: string }).token;
}

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: string; access: unknown[] };

describe('the registry with authentication (htpasswd users, a policy, the administrator)', () => {
  let served: AuthServer;
  before(async () => {
    served = await serve();
    assert.equal((await push(served.url, 'team-a/tool', 'v1', bearer(ADMIN_TOKEN))).status, 201);
  });
  after(() => served?.close());

  it('challenges a missing or wrong credential with 401, the Bearer challenge naming the scope, Basic second', async () => {
    for (const authorization of [undefined, basic('alice', 'wrong'), basic('mallory', 'x'), bearer('not-a-token'), 'Digest x']) {
      const response = await fetch(`${served.url}/v2/team-a/tool/blobs/uploads/`, { method: 'POST', headers: authorization ? { Authorization: authorization } : {} });
      assert.equal(response.status, 401, String(authorization));
      assert.equal((await errorOf(response)).code, 'UNAUTHORIZED');
      assert.deepEqual(response.headers.get('www-authenticate'), `Bearer realm="${served.url}/v2/token",service="nixery",scope="repository:team-a/tool:pull,push", Basic realm="nixery"`);
    }
    const pull = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: basic('alice', 'wrong') } });
    assert.equal(pull.status, 401, 'a wrong credential is refused even where none is needed');
    assert.match(pull.headers.get('www-authenticate') ?? '', /scope="repository:team-a\/tool:pull"/);
  });

  it('answers a valid user without the right with 403 DENIED', async () => {
    const denied = await push(served.url, 'team-b/tool', 'v1', basic('alice', 'alice-password'));
    assert.equal(denied.status, 403);
    assert.deepEqual(await errorOf(denied), { code: 'DENIED', message: 'user:alice may not push team-b/tool' });
    const bob = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { method: 'DELETE', headers: { Authorization: basic('bob', 'bob-password') } });
    assert.equal(bob.status, 403);
    assert.equal((await push(served.url, 'team-a/alice', 'v1', basic('alice', 'alice-password'))).status, 201, 'within the policy');
  });

  it('pulls with any valid identity and anonymously, as anonymous pulls are on', async () => {
    for (const authorization of [undefined, basic('dave', 'dave-password'), basic('bob', 'bob-password'), bearer(ADMIN_TOKEN)]) {
      const response = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: authorization ? { Authorization: authorization } : {} });
      assert.equal(response.status, 200, String(authorization));
    }
  });

  it('issues tokens carrying requested ∩ allowed, by GET and by the OAuth2 form', async () => {
    const alice = await token(served.url, basic('alice', 'alice-password'), 'repository:team-a/tool:pull,push,delete', 'repository:shell:pull,push');
    assert.deepEqual(claims(alice).access, [
      { type: 'repository', name: 'team-a/tool', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'shell', actions: ['pull'] },
    ]);
    assert.equal(claims(alice).sub, 'user:alice');
    const form = await fetch(`${served.url}/v2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'bob', password: 'bob-password', service: 'nixery', scope: 'repository:team-a/tool:pull,push repository:team-a/x:pull', client_id: 'containerd' }),
    });
    assert.equal(form.status, 200);
    const body = (await form.json()) as { access_token: string; token: string; expires_in: number; issued_at: string };
    assert.equal(body.expires_in, 300);
    assert.equal(body.token, body.access_token);
    assert.deepEqual(claims(body.access_token).access, [
      { type: 'repository', name: 'team-a/tool', actions: ['pull'] },
      { type: 'repository', name: 'team-a/x', actions: ['pull'] },
    ]);
    const wrong = await fetch(`${served.url}/v2/token?scope=repository:x:pull`, { headers: { Authorization: basic('alice', 'nope') } });
    assert.equal(wrong.status, 401);
    const wrongForm = await fetch(`${served.url}/v2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'nope' }) });
    assert.equal(wrongForm.status, 401);
    const refresh = await fetch(`${served.url}/v2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x' }) });
    assert.equal(refresh.status, 400, 'no refresh tokens: containerd then asks by GET');
    const exchanged = await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:push`, { headers: { Authorization: bearer(alice) } });
    assert.equal(exchanged.status, 401, 'a registry token buys no other');
  });

  it('a pull-only token cannot push; with the right, the client is challenged for a token with the scope', async () => {
    const pullOnly = await token(served.url, basic('alice', 'alice-password'), 'repository:team-a/tool:pull');
    assert.equal((await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: bearer(pullOnly) } })).status, 200);
    const pushed = await push(served.url, 'team-a/tool', 'v2', bearer(pullOnly));
    assert.equal(pushed.status, 401);
    assert.match((await errorOf(pushed)).message, /the token does not grant push team-a\/tool/);
    assert.match(pushed.headers.get('www-authenticate') ?? '', /scope="repository:team-a\/tool:pull,push"/);
    const bobs = await token(served.url, basic('bob', 'bob-password'), 'repository:team-a/tool:pull,push');
    const denied = await push(served.url, 'team-a/tool', 'v2', bearer(bobs));
    assert.equal(denied.status, 403, 'bob may not push at all');
    assert.equal((await errorOf(denied)).code, 'DENIED');
  });

  it('a token for team-a/tool cannot push shell', async () => {
    const alices = await token(served.url, basic('alice', 'alice-password'), 'repository:team-a/tool:pull,push');
    assert.equal((await push(served.url, 'team-a/tool', 'v3', bearer(alices))).status, 201);
    const other = await push(served.url, 'shell', 'mine', bearer(alices));
    assert.equal(other.status, 403);
    const admins = await token(served.url, basic('admin', ADMIN_TOKEN), 'repository:team-a/tool:pull,push');
    const adminOther = await push(served.url, 'team-b/app', 'v1', bearer(admins));
    assert.equal(adminOther.status, 401, 'even the administrator\'s token is limited to its scope');
    assert.match(adminOther.headers.get('www-authenticate') ?? '', /scope="repository:team-b\/app:pull,push"/);
  });

  it('only the administrator pushes over an on-demand name, whatever the policy grants', async () => {
    const carol = await push(served.url, 'shell/hello', 'latest', basic('carol', 'carol-password'));
    assert.equal(carol.status, 403);
    assert.match((await errorOf(carol)).message, /shell\/hello is an on-demand name .*only the administrator may push it/);
    const carols = await token(served.url, basic('carol', 'carol-password'), 'repository:hello:pull,push', 'repository:carols/own:pull,push');
    assert.deepEqual(claims(carols).access, [
      { type: 'repository', name: 'hello', actions: ['pull'] },
      { type: 'repository', name: 'carols/own', actions: ['pull', 'push'] },
    ]);
    assert.equal((await push(served.url, 'hello', 'latest', bearer(carols))).status, 403);
    assert.equal((await push(served.url, 'carols/own', 'v1', bearer(carols))).status, 201, 'not a package list');
    assert.equal((await push(served.url, 'shell/hello', 'pinned', basic('ci', ADMIN_TOKEN))).status, 201, 'the administrator, docker-style Basic');
  });

  it('answers an expired token with 401 and a fresh challenge', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ access: [{ type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] }] })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('nixery')
      .setAudience('nixery')
      .setSubject('user:alice')
      .setIssuedAt(now - 900)
      .setExpirationTime(now - 600)
      .sign(served.tokenKey);
    const response = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: bearer(expired) } });
    assert.equal(response.status, 401);
    assert.match((await errorOf(response)).message, /expired/);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer realm="[^"]+\/v2\/token",service="nixery",scope="repository:team-a\/tool:pull"/);
    const ping = await fetch(`${served.url}/v2/`, { headers: { Authorization: bearer(expired) } });
    assert.equal(ping.status, 401);
  });

  it('the version check: challenged without a credential, 200 with a valid one or an anonymous token', async () => {
    const anonymous = await fetch(`${served.url}/v2/`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('www-authenticate'), `Bearer realm="${served.url}/v2/token",service="nixery", Basic realm="nixery"`);
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'dave-password') } })).status, 200);
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: bearer(await token(served.url, undefined, 'repository:x:pull')) } })).status, 200);
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'wrong') } })).status, 401);
  });

  it('deletes a tag with a token limited to deleting it, bought with the administrator token', async () => {
    assert.equal((await push(served.url, 'team-a/doomed', 'v1', bearer(ADMIN_TOKEN))).status, 201);
    const listed = async () => ((await (await fetch(`${served.url}/v2/team-a/doomed/tags/list`)).json()) as { tags: string[] }).tags;
    assert.deepEqual(await listed(), ['v1']);
    await deleteTag({ registry: new URL(served.url).host, name: 'team-a/doomed', tag: 'v1' }, ADMIN_TOKEN);
    assert.deepEqual(await listed(), []);
    const deletion = served.logs.find((l) => l.msg === 'request' && l.method === 'DELETE' && l.path === '/v2/team-a/doomed/manifests/v1');
    assert.equal(deletion?.identity, 'admin');
    assert.equal(deletion?.status, '202');
  });

  it('names the identity in each log line, never a credential', async () => {
    const lines = served.logs.filter((l) => l.msg === 'request');
    const identities = new Set(lines.map((l) => l.identity));
    for (const identity of ['admin', 'user:alice', 'user:bob', 'user:carol', 'anonymous']) assert.ok(identities.has(identity), identity);
    const text = JSON.stringify(served.logs);
    for (const secret of [ADMIN_TOKEN, 'alice-password', 'bob-password', 'carol-password', Buffer.from(`alice:alice-password`).toString('base64'), 'eyJ']) {
      assert.ok(!text.includes(secret), `a log line holds ${secret.slice(0, 6)}…`);
    }
    assert.ok(lines.some((l) => l.identity === 'anonymous' && l.credential === 'invalid'), 'a refused credential is noted as such');
  });
});

describe('the registry with anonymous pulls off', () => {
  let served: AuthServer;
  before(async () => {
    served = await serve({ anonymousPull: false });
    assert.equal((await push(served.url, 'team-a/tool', 'v1', bearer(ADMIN_TOKEN))).status, 201);
  });
  after(() => served?.close());

  it('refuses anonymous pulls with 401 and a challenge; a user pulls', async () => {
    const anonymous = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /scope="repository:team-a\/tool:pull"/);
    assert.equal((await fetch(`${served.url}/v2/team-a/tool/tags/list`)).status, 401);
    assert.equal((await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: basic('bob', 'bob-password') } })).status, 200);
    const userToken = await token(served.url, basic('bob', 'bob-password'), 'repository:team-a/tool:pull');
    assert.equal((await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: bearer(userToken) } })).status, 200);
    const dave = await fetch(`${served.url}/v2/team-a/tool/manifests/v1`, { headers: { Authorization: basic('dave', 'dave-password') } });
    assert.equal(dave.status, 403, 'no rule lets dave pull');
    assert.equal((await errorOf(dave)).code, 'DENIED');
  });

  it('gives no anonymous token, and challenges the version check until a credential is valid', async () => {
    const refused = await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:pull`);
    assert.equal(refused.status, 401);
    assert.match((await errorOf(refused)).message, /anonymous pulls are off/);
    assert.equal((await fetch(`${served.url}/v2/`)).status, 401);
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'dave-password') } })).status, 200);
  });

  it('lists no failed image names on the index page', async () => {
    const page = await (await fetch(`${served.url}/`)).text();
    assert.match(page, /Build errors are not listed/);
  });
});

describe('Kubernetes ServiceAccount tokens as credentials', () => {
  let api: FakeKubernetesApi;
  let served: AuthServer;
  before(async () => {
    api = await startFakeKubernetesApi(await tempDir());
    served = await serve({ kubernetes: api });
  });
  after(async () => {
    await served?.close();
    await api?.close();
  });

  it('a ServiceAccount token with the registry\'s audience buys a token for what the policy grants its ServiceAccount', async () => {
    const jwt = await api.serviceAccountToken('team-a', 'builder', { audiences: [AUDIENCE] });
    const issued = await token(served.url, basic('serviceaccount', jwt), 'repository:team-a/tool:pull,push', 'repository:team-b/tool:pull,push');
    assert.equal(claims(issued).sub, 'system:serviceaccount:team-a:builder');
    assert.deepEqual(claims(issued).access, [
      { type: 'repository', name: 'team-a/tool', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team-b/tool', actions: ['pull'] },
    ]);
    assert.equal((await push(served.url, 'team-a/tool', 'built', bearer(issued))).status, 201);
    assert.equal((await push(served.url, 'team-a/tool', 'direct', bearer(jwt))).status, 201, 'the Kubernetes token directly as a bearer token');
    const lines = served.logs.filter((l) => l.msg === 'request' && l.identity === 'system:serviceaccount:team-a:builder');
    assert.ok(lines.length >= 4);
  });

  it('a token for another audience is refused with 401', async () => {
    const jwt = await api.serviceAccountToken('team-a', 'builder', { audiences: ['https://kubernetes.default.svc.cluster.local'] });
    const refused = await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:pull,push`, { headers: { Authorization: basic('serviceaccount', jwt) } });
    assert.equal(refused.status, 401);
    assert.match((await errorOf(refused)).message, /not accepted: token audiences/);
    assert.equal((await push(served.url, 'team-a/tool', 'x', bearer(jwt))).status, 401);
  });

  it('another ServiceAccount has only what the policy gives every identity', async () => {
    const jwt = await api.serviceAccountToken('team-b', 'builder', { audiences: [AUDIENCE] });
    const denied = await push(served.url, 'team-a/tool', 'x', basic('serviceaccount', jwt));
    assert.equal(denied.status, 403);
    assert.deepEqual(await errorOf(denied), { code: 'DENIED', message: 'system:serviceaccount:team-b:builder may not push team-a/tool' });
  });
});

/** A GET whose connection comes from `localAddress`: another loopback address is another client to the registry. */
function getFrom(localAddress: string, url: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { localAddress, agent: false, headers: { Authorization: authorization } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
  });
}

describe('the per-client bound on costly credential checks (NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE)', () => {
  const clock = { ms: 0 };
  let served: AuthServer;
  before(async () => {
    served = await serve({ clientAuthChecksPerMinute: 2, checkLimitNow: () => clock.ms });
  });
  after(() => served?.close());

  const expectTooMany = async (response: Response, what: string) => {
    assert.equal(response.status, 429, what);
    assert.equal(response.headers.get('retry-after'), '30', what);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/, what);
    const body = (await response.json()) as { errors: { code: string; message: string; detail: unknown }[] };
    assert.equal(body.errors.length, 1, what);
    assert.equal(body.errors[0]!.code, 'TOOMANYREQUESTS', what);
    assert.match(body.errors[0]!.message, /^too many credential checks from 127\.0\.0\.1: this registry checks at most 2 passwords or Kubernetes tokens a minute per client address; retry in 30 s$/, what);
    assert.deepEqual(body.errors[0]!.detail, { reason: 'auth_checks_rate_limited', client: '127.0.0.1', authChecksPerMinute: 2, retryAfterSeconds: 30 }, what);
  };

  it('answers 429 TOOMANYREQUESTS with Retry-After once a client has had its wrong passwords checked, on /v2/ and the token endpoint, without checking more', async (t) => {
    const compares = t.mock.method(bcrypt, 'compare');
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('alice', 'wrong-1') } })).status, 401);
    assert.equal((await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:pull`, { headers: { Authorization: basic('alice', 'wrong-2') } })).status, 401);
    assert.equal(compares.mock.callCount(), 2);

    await expectTooMany(await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('alice', 'wrong-3') } }), 'GET /v2/');
    await expectTooMany(await fetch(`${served.url}/v2/team-a/tool/tags/list`, { headers: { Authorization: basic('bob', 'wrong') } }), 'a repository path');
    await expectTooMany(await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:pull`, { headers: { Authorization: basic('alice', 'wrong-3') } }), 'GET /v2/token');
    await expectTooMany(
      await fetch(`${served.url}/v2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'repository:team-a/tool:pull' }) }),
      'POST /v2/token, the right password too: checking it would cost as much',
    );
    assert.equal(compares.mock.callCount(), 2, 'no bcrypt run for a refused check');

    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: bearer(ADMIN_TOKEN) } })).status, 200, 'the push token costs no check');
    const line = served.logs.find((l) => l.msg === 'request' && l.path === '/v2/' && l.status === '429');
    assert.ok(line, 'the refusal is logged as a request');
  });

  it('lets the right password through for another client address, and for the same one after the wait', async () => {
    assert.equal(await getFrom('127.0.0.2', `${served.url}/v2/`, basic('bob', 'wrong')), 401, 'checked: 127.0.0.2 has its own allowance');
    assert.equal(await getFrom('127.0.0.2', `${served.url}/v2/token?scope=repository:team-a/tool:pull`, basic('carol', 'carol-password')), 200);
    await expectTooMany(await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'dave-password') } }), '127.0.0.1 still waits');
    clock.ms += 30_000;
    assert.equal((await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'dave-password') } })).status, 200, 'one check back after 30 s');
    const remembered = await fetch(`${served.url}/v2/token?scope=repository:team-a/tool:pull`, { headers: { Authorization: basic('dave', 'dave-password') } });
    assert.equal(remembered.status, 200, 'a remembered success costs no check');
    await expectTooMany(await fetch(`${served.url}/v2/`, { headers: { Authorization: basic('dave', 'wrong') } }), 'and the next new one waits again');
  });
});
