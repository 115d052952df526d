// Authentication with real clients against `nixery serve`: anonymous pulls off, htpasswd users, a
// policy, the administrator's push token, and Kubernetes ServiceAccount tokens checked by
// TokenReview at a fake API server (HTTPS, in this process). skopeo pulls and pushes with
// --creds through the token flow; `nixery build --push --push-identity-token-file` pushes with a
// projected token; the registry's log names identities and holds no credential.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { eventually, run } from '@nixery/test-support';
import { startFakeKubernetesApi, type FakeKubernetesApi } from '../../registry/src/auth/test-support.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const ADMIN_TOKEN = 'e2e-auth-admin-token-0123456789';
const AUDIENCE = 'nixery.dev/e2e/registry';
const PASSWORDS = { alice: 'alice-password-e2e', bob: 'bob-password-e2e' };
const POLICY = {
  rules: [
    { repositories: ['**'], authenticated: true, actions: ['pull'] },
    { repositories: ['team-a/**'], users: ['alice'], actions: ['pull', 'push', 'delete'] },
    { repositories: ['**'], users: ['alice'], actions: ['push'] },
    { repositories: ['team-a/built'], serviceAccounts: ['team-a/nixery-build-built'], actions: ['pull', 'push', 'delete'] },
  ],
};

describe('registry: authentication with real clients', () => {
  let work: string;
  let api: FakeKubernetesApi;
  let registry: RegistryProcess;

  before(async () => {
    work = await tempDir('nixery-e2e-auth-');
    api = await startFakeKubernetesApi(path.join(work, 'kubernetes'));
    const htpasswd = path.join(work, 'htpasswd');
    await fs.writeFile(htpasswd, Object.entries(PASSWORDS).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}`).join('\n'));
    const policy = path.join(work, 'policy.json');
    await fs.writeFile(policy, JSON.stringify(POLICY));
    registry = await startRegistry({
      env: {
        NIXERY_PUSH_TOKEN: ADMIN_TOKEN,
        NIXERY_ANONYMOUS_PULL: 'false',
        NIXERY_HTPASSWD_FILE: htpasswd,
        NIXERY_AUTH_POLICY_FILE: policy,
        NIXERY_K8S_TOKEN_AUDIENCE: AUDIENCE,
        KUBERNETES_SERVICE_HOST: api.host,
        KUBERNETES_SERVICE_PORT: String(api.port),
        NIXERY_K8S_SERVICE_ACCOUNT_DIR: api.serviceAccountDir,
      },
    });
  });
  after(async () => {
    await registry?.stop();
    await api?.close();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const skopeo = (args: string[]) => run('skopeo', ['--debug=false', ...args], { timeoutMs: 300_000 });
  const copy = (src: string, dest: string, ...credentials: string[]) =>
    skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', ...credentials, `docker://${registry.host}/${src}`, `docker://${registry.host}/${dest}`]);
  const inspect = (reference: string, ...credentials: string[]) => skopeo(['inspect', '--tls-verify=false', ...credentials, `docker://${registry.host}/${reference}`]);
  const requests = () =>
    registry
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as { method: string; path: string; status: string; identity: string });

  it('refuses anonymous pulls; a user pulls with --creds through the token flow', async () => {
    const anonymous = await inspect('shell/hello:latest');
    assert.notEqual(anonymous.code, 0);
    assert.match(anonymous.stderr, /unauthorized|authentication required|401/i);
    const pulled = await inspect('shell/hello:latest', '--creds', `alice:${PASSWORDS.alice}`);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.ok(requests().some((r) => r.path.startsWith('/v2/token') && r.identity === 'user:alice' && r.status === '200'), 'the token endpoint issued alice a token');
    const wrong = await inspect('shell/hello:latest', '--creds', 'alice:wrong');
    assert.notEqual(wrong.code, 0);
  });

  it('skopeo copies with --src-creds and --dest-creds where the policy allows, and is denied elsewhere', async () => {
    const pushed = await copy('shell/hello:latest', 'team-a/tool:v1', '--src-creds', `alice:${PASSWORDS.alice}`, '--dest-creds', `alice:${PASSWORDS.alice}`);
    assert.equal(pushed.code, 0, pushed.stderr);
    const back = await inspect('team-a/tool:v1', '--creds', `bob:${PASSWORDS.bob}`);
    assert.equal(back.code, 0, back.stderr);
    assert.equal((JSON.parse(back.stdout) as { Name: string }).Name, `${registry.host}/team-a/tool`);
    const bob = await copy('team-a/tool:v1', 'team-a/bobs:v1', '--src-creds', `bob:${PASSWORDS.bob}`, '--dest-creds', `bob:${PASSWORDS.bob}`);
    assert.notEqual(bob.code, 0, 'bob may pull only');
    assert.match(bob.stderr, /denied|403/i);
  });

  it('only the administrator pushes over an on-demand name: alice is denied, the push token works as creds and as a registry token', async () => {
    const alice = await copy('team-a/tool:v1', 'hello:pinned', '--src-creds', `alice:${PASSWORDS.alice}`, '--dest-creds', `alice:${PASSWORDS.alice}`);
    assert.notEqual(alice.code, 0);
    assert.match(alice.stderr, /denied|403/i);
    const creds = await copy('team-a/tool:v1', 'hello:pinned', '--src-creds', `alice:${PASSWORDS.alice}`, '--dest-creds', `ci:${ADMIN_TOKEN}`);
    assert.equal(creds.code, 0, creds.stderr);
    const token = await copy('team-a/tool:v1', 'shell/hello:pinned', '--src-creds', `alice:${PASSWORDS.alice}`, '--dest-registry-token', ADMIN_TOKEN);
    assert.equal(token.code, 0, token.stderr);
    // The registry logs a request once its answer is sent: the line may arrive after skopeo exits.
    await eventually('the admin PUT in the request log', async () => requests().some((r) => r.method === 'PUT' && r.path === '/v2/shell/hello/manifests/pinned' && r.identity === 'admin' && r.status === '201') || undefined, 5_000, 50);
  });

  it('nixery build --push-identity-token-file pushes with a projected ServiceAccount token, granted by the policy', async () => {
    const tokenFile = path.join(work, 'identity-token');
    await fs.writeFile(tokenFile, await api.serviceAccountToken('team-a', 'nixery-build-built', { audiences: [AUDIENCE] }));
    const storage = await tempDir('nixery-e2e-auth-build-');
    try {
      const built = await nixeryBuild(['--packages', 'hello', '--push', `${registry.host}/team-a/built:v1`, '--push-identity-token-file', tokenFile], { STORAGE_PATH: storage });
      // (That it may push nothing else, the client's unit test shows: a denied push is retried for minutes.)
      assert.equal(built.code, 0, built.stderr);
    } finally {
      await fs.rm(storage, { recursive: true, force: true });
    }
    const puts = await eventually('the build\'s PUTs in the request log', async () => {
      const found = requests().filter((r) => r.method === 'PUT' && r.path.startsWith('/v2/team-a/built/manifests/'));
      return found.length > 0 ? found : undefined;
    }, 5_000, 50);
    assert.ok(puts.length >= 1 && puts.every((r) => r.identity === 'system:serviceaccount:team-a:nixery-build-built' && r.status === '201'), JSON.stringify(puts));
    assert.ok(api.requests.some((r) => r === 'POST /apis/authentication.k8s.io/v1/tokenreviews'), 'checked by TokenReview');
  });

  it('names identities in its log, never a credential', async () => {
    const logs = registry.logs();
    const identities = new Set(requests().map((r) => r.identity));
    for (const identity of ['anonymous', 'user:alice', 'user:bob', 'admin', 'system:serviceaccount:team-a:nixery-build-built']) assert.ok(identities.has(identity), identity);
    for (const secret of [ADMIN_TOKEN, PASSWORDS.alice, PASSWORDS.bob, 'eyJ']) assert.ok(!logs.includes(secret), `the log holds ${secret.slice(0, 4)}…`);
  });

  it('refuses to start with a non-bcrypt htpasswd entry', async () => {
    const bad = path.join(work, 'htpasswd-md5');
    await fs.writeFile(bad, 'carol:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n');
    await assert.rejects(startRegistry({ env: { NIXERY_HTPASSWD_FILE: bad } }), /process exited \(64\)[\s\S]*line 1 \(user \\"carol\\"\): only bcrypt entries/);
  });
});
