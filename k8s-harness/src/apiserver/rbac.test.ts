// RBAC rule matching over logged requests, as kube-apiserver's RBAC authorizer matches rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rbacAllows, ruleAllows, unusedGrants, type AuthorizationRequest, type PolicyRule } from './rbac.ts';

const request = (verb: string, resource: string, extra: Partial<AuthorizationRequest> = {}): AuthorizationRequest => {
  const [plural, subresource] = resource.split('/');
  return {
    verb,
    path: '/irrelevant',
    resourceRequest: true,
    apiGroup: '',
    resource: plural ?? '',
    ...(subresource ? { subresource } : {}),
    ...extra,
  };
};

describe('rbacAllows', () => {
  it('needs the verb, the API group and the resource to match', () => {
    const rules: PolicyRule[] = [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list'] }];
    assert.equal(rbacAllows(rules, request('list', 'deployments', { apiGroup: 'apps' })), true);
    assert.equal(rbacAllows(rules, request('watch', 'deployments', { apiGroup: 'apps' })), false);
    assert.equal(rbacAllows(rules, request('list', 'deployments', { apiGroup: 'extensions' })), false);
    assert.equal(rbacAllows(rules, request('list', 'replicasets', { apiGroup: 'apps' })), false);
    assert.equal(rbacAllows([], request('list', 'pods')), false);
  });

  it("matches the core group as ''", () => {
    assert.equal(rbacAllows([{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }], request('get', 'pods', { name: 'p' })), true);
    assert.equal(rbacAllows([{ apiGroups: ['v1'], resources: ['pods'], verbs: ['get'] }], request('get', 'pods', { name: 'p' })), false);
  });

  it('a subresource needs its own rule: resource/subresource, */subresource or *, never resource/*', () => {
    const status = request('patch', 'nixeryinstances/status', { apiGroup: 'nixery.dev' });
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['nixeryinstances'], verbs: ['patch'] }], status), false);
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['nixeryinstances/status'], verbs: ['patch'] }], status), true);
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['*/status'], verbs: ['patch'] }], status), true);
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['*'], verbs: ['patch'] }], status), true);
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['nixeryinstances/*'], verbs: ['patch'] }], status), false);
    assert.equal(rbacAllows([{ apiGroups: ['nixery.dev'], resources: ['*/status'], verbs: ['patch'] }], request('patch', 'nixeryinstances', { apiGroup: 'nixery.dev' })), false);
  });

  it('resourceNames limit a rule to named objects, so it never allows create, list or watch of all', () => {
    const rules: PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['nixery-operator'], verbs: ['get', 'update', 'create', 'list', 'watch'] }];
    const lease = (verb: string, name?: string) => request(verb, 'leases', { apiGroup: 'coordination.k8s.io', ...(name ? { name } : {}) });
    assert.equal(rbacAllows(rules, lease('get', 'nixery-operator')), true);
    assert.equal(rbacAllows(rules, lease('get', 'someone-else')), false);
    assert.equal(rbacAllows(rules, lease('create')), false);
    assert.equal(rbacAllows(rules, lease('list')), false);
    assert.equal(rbacAllows(rules, lease('watch', 'nixery-operator')), true, 'a watch pinned by metadata.name carries the name');
  });

  it('* stands for every verb, group and resource', () => {
    const all: PolicyRule[] = [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }];
    assert.equal(rbacAllows(all, request('deletecollection', 'widgets', { apiGroup: 'example.com' })), true);
    assert.equal(rbacAllows(all, request('get', 'pods/log')), true);
  });

  it('a PUT or PATCH that created its object needs create too', () => {
    const applied = request('patch', 'services', { name: 'nixery', created: true });
    assert.equal(rbacAllows([{ apiGroups: [''], resources: ['services'], verbs: ['patch'] }], applied), false);
    assert.equal(rbacAllows([{ apiGroups: [''], resources: ['services'], verbs: ['patch', 'create'] }], applied), true);
    assert.equal(rbacAllows([{ apiGroups: [''], resources: ['services'], verbs: ['patch'] }, { apiGroups: [''], resources: ['services'], verbs: ['create'] }], applied), true);
    assert.equal(ruleAllows({ apiGroups: [''], resources: ['services'], verbs: ['patch'] }, applied), true, 'ruleAllows looks at the verb alone');
  });

  it('non-resource requests match nonResourceURLs (exact, or a prefix ending in *), never resource rules', () => {
    const discovery = { verb: 'get', path: '/apis/apps/v1', resourceRequest: false } as const;
    assert.equal(rbacAllows([{ nonResourceURLs: ['/apis/*'], verbs: ['get'] }], discovery), true);
    assert.equal(rbacAllows([{ nonResourceURLs: ['/apis'], verbs: ['get'] }], discovery), false);
    assert.equal(rbacAllows([{ nonResourceURLs: ['/version'], verbs: ['get'] }], { verb: 'get', path: '/version', resourceRequest: false }), true);
    assert.equal(rbacAllows([{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }], discovery), false);
  });
});

describe('unusedGrants', () => {
  it('lists each verb, resource and name a rule grants that no request needed', () => {
    const rules: PolicyRule[] = [
      { apiGroups: [''], resources: ['services', 'secrets'], verbs: ['get', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['a', 'b'], verbs: ['update'] },
      { nonResourceURLs: ['/metrics'], verbs: ['get'] },
    ];
    const used = [
      request('get', 'services', { name: 's' }),
      request('patch', 'services', { name: 's', created: true }),
      request('update', 'leases', { apiGroup: 'coordination.k8s.io', name: 'a' }),
    ];
    assert.deepEqual(unusedGrants(rules, used), [
      { apiGroup: '', resource: 'secrets', verb: 'get' },
      { apiGroup: '', resource: 'secrets', verb: 'patch' },
      { apiGroup: 'coordination.k8s.io', resource: 'leases', verb: 'update', resourceName: 'b' },
      { nonResourceURL: '/metrics', verb: 'get' },
    ]);
  });

  it('counts the create of a creating PATCH as used', () => {
    assert.deepEqual(unusedGrants([{ apiGroups: [''], resources: ['services'], verbs: ['create', 'patch'] }], [request('patch', 'services', { created: true })]), []);
  });
});
