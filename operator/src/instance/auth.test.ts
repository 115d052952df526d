import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import bcrypt from 'bcryptjs';
import { createPrivateKey } from 'node:crypto';
import { parsePolicy } from '@nixery/registry/operator-api';
import { testInstance } from '../test-support/fixtures.ts';
import {
  anonymousPull,
  authDelegatorBindingName,
  desiredAuthDelegatorBinding,
  desiredPolicyConfigMap,
  desiredPullSecret,
  dockerConfigJson,
  pullHosts,
  renderPolicy,
  tokenAudience,
} from './auth.ts';
import { generatePullUser, generateTokenKey, PULL_USER } from './credentials.ts';

const instance = testInstance();
const grants = [
  { serviceAccount: 'nixery-build-toolbox', repository: 'toolbox' },
  { serviceAccount: 'nixery-build-greeter', repository: 'apps/greeter' },
];

describe('the access policy of an instance', () => {
  it("grants each NixImage's build ServiceAccount pull, push and delete on its repository only (a package list's name too), and the pull user pull on everything", () => {
    assert.deepEqual(renderPolicy(instance, grants, PULL_USER).rules.slice(1), [
      { repositories: ['apps/greeter'], serviceAccounts: ['team-a/nixery-build-greeter'], actions: ['pull', 'push', 'delete'], overOnDemandNames: true },
      { repositories: ['toolbox'], serviceAccounts: ['team-a/nixery-build-toolbox'], actions: ['pull', 'push', 'delete'], overOnDemandNames: true },
      { repositories: ['**'], users: ['nixery-operator-pull'], actions: ['pull'] },
    ]);
  });

  it('keeps the registry’s meaning of “no policy” for an instance without rules: every authenticated identity pulls', () => {
    assert.deepEqual(renderPolicy(instance, [], PULL_USER).rules[0], { repositories: ['**'], authenticated: true, actions: ['pull'] });
  });

  it("puts the instance's own rules first, in place of that default", () => {
    const rules = [{ repositories: ['team-a/**'], users: ['alice'], namespaces: ['team-a'], actions: ['pull' as const, 'push' as const] }];
    const policy = renderPolicy(testInstance({ auth: { anonymousPull: false, policy: { rules } } }), grants, PULL_USER);
    assert.deepEqual(policy.rules[0], rules[0]);
    assert.equal(policy.rules.length, 4);
    assert.ok(!policy.rules.some((r) => r.authenticated));
  });

  it('is the same document for the same NixImages in any order, so the ConfigMap is not rewritten', () => {
    assert.deepEqual(renderPolicy(instance, [...grants].reverse(), PULL_USER), renderPolicy(instance, grants, PULL_USER));
  });

  it('is a policy file the registry loads', () => {
    const rules = [{ repositories: ['team-a/**', 'tools/*'], users: ['alice'], serviceAccounts: ['team-a/*'], namespaces: ['team-b'], actions: ['pull' as const, 'push' as const] }];
    for (const subject of [instance, testInstance({ auth: { anonymousPull: false, policy: { rules } } })]) {
      const file = desiredPolicyConfigMap(subject, renderPolicy(subject, grants, PULL_USER)).data!['policy.json']!;
      assert.equal(parsePolicy(file).rules.length, renderPolicy(subject, grants, PULL_USER).rules.length);
    }
  });

  it('goes into the ConfigMap <instance>-auth-policy as policy.json, owned by the instance', () => {
    const configMap = desiredPolicyConfigMap(instance, renderPolicy(instance, grants, PULL_USER));
    assert.equal(configMap.metadata!.name, 'nixery-auth-policy');
    assert.equal(configMap.metadata!.ownerReferences![0]!.kind, 'NixeryInstance');
    assert.deepEqual(JSON.parse(configMap.data!['policy.json']!), renderPolicy(instance, grants, PULL_USER));
  });
});

describe('the credentials an instance generates', () => {
  it('has a token key the registry can use: EC P-256, PEM PKCS#8', () => {
    const pem = generateTokenKey();
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(pem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails!.namedCurve, 'prime256v1');
    assert.notEqual(generateTokenKey(), pem);
  });

  it('has a pull user whose htpasswd line holds a bcrypt hash of its random password, and never the password', () => {
    const user = generatePullUser();
    assert.equal(user.username, 'nixery-operator-pull');
    assert.ok(user.password.length >= 32);
    const [name, hash] = user.htpasswd.trimEnd().split(':');
    assert.equal(name, 'nixery-operator-pull');
    assert.match(hash!, /^\$2[aby]\$10\$/);
    assert.equal(bcrypt.compareSync(user.password, hash!), true);
    assert.ok(!user.htpasswd.includes(user.password));
    assert.notEqual(generatePullUser().password, user.password);
  });
});

describe('pull Secrets', () => {
  it('log in at the Service DNS name with its port, and at the node-local address when that is on', () => {
    assert.deepEqual(pullHosts(instance), ['nixery.team-a.svc.cluster.local:5000']);
    assert.deepEqual(pullHosts(testInstance({ nodeLocal: { enabled: true, hostPort: 5555 } })), ['nixery.team-a.svc.cluster.local:5000', 'localhost:5555']);
  });

  it('are kubernetes.io/dockerconfigjson Secrets <instance>-pull as the kubelet reads them', () => {
    const secret = desiredPullSecret(testInstance({ nodeLocal: { enabled: true, hostPort: 5555 } }), 'apps', { username: 'u', password: 'p@ss' });
    assert.equal(secret.type, 'kubernetes.io/dockerconfigjson');
    assert.equal(secret.metadata!.name, 'nixery-pull');
    assert.equal(secret.metadata!.namespace, 'apps');
    const config = JSON.parse(Buffer.from(secret.data!['.dockerconfigjson']!, 'base64').toString());
    const entry = { username: 'u', password: 'p@ss', auth: Buffer.from('u:p@ss').toString('base64') };
    assert.deepEqual(config, { auths: { 'nixery.team-a.svc.cluster.local:5000': entry, 'localhost:5555': entry } });
    assert.equal(secret.data!['.dockerconfigjson'], Buffer.from(dockerConfigJson(['nixery.team-a.svc.cluster.local:5000', 'localhost:5555'], 'u', 'p@ss')).toString('base64'));
  });

  it('are not owned (another namespace) but labelled with their instance and its namespace', () => {
    const secret = desiredPullSecret(instance, 'apps', { username: 'u', password: 'p' });
    assert.equal(secret.metadata!.ownerReferences, undefined);
    assert.equal(secret.metadata!.labels!['app.kubernetes.io/instance'], 'nixery');
    assert.equal(secret.metadata!.labels!['nixery.dev/instance-namespace'], 'team-a');
    assert.equal(secret.metadata!.labels!['app.kubernetes.io/managed-by'], 'nixery-operator');
  });
});

describe('ServiceAccount tokens', () => {
  it('carry the audience nixery.dev/<namespace>/<instance>', () => {
    assert.equal(tokenAudience(instance), 'nixery.dev/team-a/nixery');
  });

  it("are reviewed by the registry's ServiceAccount, bound to system:auth-delegator by a ClusterRoleBinding named for the instance", () => {
    const binding = desiredAuthDelegatorBinding(instance);
    assert.equal(binding.metadata!.name, 'nixery.team-a.nixery.auth-delegator');
    assert.equal(authDelegatorBindingName(testInstance({}, { namespace: 'team-b' })), 'nixery.team-b.nixery.auth-delegator');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'nixery', namespace: 'team-a' }]);
    assert.equal(binding.metadata!.ownerReferences, undefined, 'cluster-scoped: the finalizer removes it');
    assert.equal(binding.metadata!.labels!['nixery.dev/instance-namespace'], 'team-a');
  });
});

describe('anonymous pulls', () => {
  it('are on unless the instance turns them off', () => {
    assert.equal(anonymousPull(instance), true);
    assert.equal(anonymousPull(testInstance({ auth: { anonymousPull: true } })), true);
    assert.equal(anonymousPull(testInstance({ auth: { anonymousPull: false } })), false);
  });
});
