// The chart's RBAC oracle on its own: Kubernetes' rule semantics, case by case, and the bindings'
// scopes. The least-privilege check of install.test.ts is only as good as this.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { RequestLogEntry } from '@nixery/k8s-harness';
import { allowed, permissionsOf, unusedPermissionsOf, type PolicyRule, type RbacRequest } from './rbac-rules.ts';
import { deniedRequests, grantsFor, unusedPermissions } from './rbac.ts';

/** A resource request; the core group unless `apiGroup` says otherwise. */
function onResource(verb: string, resource: string, more: Partial<RbacRequest> = {}): RbacRequest {
  const [plain, subresource] = resource.split('/');
  return { verb: verb as RbacRequest['verb'], path: `/x/${resource}`, resourceRequest: true, apiGroup: '', resource: plain!, ...(subresource ? { subresource } : {}), ...more };
}

const onPath = (verb: string, path: string): RbacRequest => ({ verb: verb as RbacRequest['verb'], path, resourceRequest: false });

const apps = (verb: string, resource: string) => onResource(verb, resource, { apiGroup: 'apps' });
const widgets = (resources: string[]): PolicyRule[] => [{ apiGroups: ['example.com'], resources, verbs: ['patch'] }];
const widgetStatus = onResource('patch', 'widgets/status', { apiGroup: 'example.com' });
const leases: PolicyRule[] = [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['mine'], verbs: ['get', 'create', 'list'] }];
const lease = (verb: string, name?: string) => onResource(verb, 'leases', { apiGroup: 'coordination.k8s.io', ...(name ? { name } : {}) });
const everything: PolicyRule[] = [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }];
const services = (verbs: string[]): PolicyRule[] => [{ apiGroups: [''], resources: ['services'], verbs }];
const createdByPatch = onResource('patch', 'services', { name: 's', created: true });

/** [what the case shows, the rules, the request, whether the rules allow it] */
const CASES: [string, PolicyRule[], RbacRequest, boolean][] = [
  ['verb, group and resource listed', [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list'] }], apps('list', 'deployments'), true],
  ['a verb not listed', [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list'] }], apps('watch', 'deployments'), false],
  ['another group', [{ apiGroups: ['extensions'], resources: ['deployments'], verbs: ['list'] }], apps('list', 'deployments'), false],
  ['another resource of the group', [{ apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['list'] }], apps('list', 'deployments'), false],
  ['no rules', [], onResource('get', 'pods'), false],
  ["the core group is ''", [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }], onResource('get', 'pods'), true],
  ['the core group is not v1', [{ apiGroups: ['v1'], resources: ['pods'], verbs: ['get'] }], onResource('get', 'pods'), false],
  ['no apiGroups: no group', [{ resources: ['pods'], verbs: ['get'] }], onResource('get', 'pods'), false],
  ['a resource does not reach its subresources', widgets(['widgets']), widgetStatus, false],
  ['resource/subresource', widgets(['widgets/status']), widgetStatus, true],
  ['*/subresource', widgets(['*/status']), widgetStatus, true],
  ['*/another subresource', widgets(['*/scale']), widgetStatus, false],
  ['* covers subresources', widgets(['*']), widgetStatus, true],
  ['no wildcard subresource', widgets(['widgets/*']), widgetStatus, false],
  ['*/subresource is not the resource', widgets(['*/status']), onResource('patch', 'widgets', { apiGroup: 'example.com' }), false],
  ['a listed name', leases, lease('get', 'mine'), true],
  ['another name', leases, lease('get', 'theirs'), false],
  ['names exclude a create (no name)', leases, lease('create'), false],
  ['names exclude a list of all', leases, lease('list'), false],
  ['* for verbs, groups and resources', everything, onResource('deletecollection', 'widgets', { apiGroup: 'example.com' }), true],
  ['* reaches subresources of the core group', everything, onResource('get', 'pods/log'), true],
  ['resources never grant a URL', everything, onPath('get', '/healthz'), false],
  ['a URL prefix ending in *', [{ nonResourceURLs: ['/apis/*'], verbs: ['get'] }], onPath('get', '/apis/apps/v1'), true],
  ['a URL without * is exact', [{ nonResourceURLs: ['/apis'], verbs: ['get'] }], onPath('get', '/apis/apps/v1'), false],
  ['an exact URL', [{ nonResourceURLs: ['/version'], verbs: ['get'] }], onPath('get', '/version'), true],
  ['* for URLs', [{ nonResourceURLs: ['*'], verbs: ['get'] }], onPath('get', '/metrics'), true],
  ['a URL with another verb', [{ nonResourceURLs: ['/version'], verbs: ['get'] }], onPath('post', '/version'), false],
  ['URLs never grant a resource', [{ nonResourceURLs: ['*'], verbs: ['*'] }], onResource('get', 'pods'), false],
  ['a creating PATCH needs create too', services(['patch']), createdByPatch, false],
  ['a creating PATCH with patch and create', services(['patch', 'create']), createdByPatch, true],
  ['patch and create from two rules', [...services(['patch']), ...services(['create'])], createdByPatch, true],
];

describe('RBAC rule matching', () => {
  for (const [what, rules, request, expected] of CASES) {
    it(`${expected ? 'allows' : 'denies'}: ${what}`, () => assert.equal(allowed(rules, request), expected));
  }

  it('splits rules into single permissions and finds the ones no request needed', () => {
    const rules: PolicyRule[] = [
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['a', 'b'], verbs: ['update'] },
      { nonResourceURLs: ['/healthz'], verbs: ['get'] },
    ];
    assert.equal(permissionsOf(rules).length, 4 + 2 + 1);
    const used = [onResource('get', 'pods', { name: 'p' }), onResource('list', 'pods'), onResource('update', 'leases', { apiGroup: 'coordination.k8s.io', name: 'a' })];
    assert.deepEqual(unusedPermissionsOf(rules, used), [
      { verb: 'get', apiGroup: '', resource: 'pods/log' },
      { verb: 'list', apiGroup: '', resource: 'pods/log' },
      { verb: 'update', apiGroup: 'coordination.k8s.io', resource: 'leases', resourceName: 'b' },
      { verb: 'get', nonResourceURL: '/healthz' },
    ]);
    assert.deepEqual(unusedPermissionsOf(services(['create', 'patch']), [onResource('patch', 'services', { created: true })]), []);
  });
});

describe('RBAC bindings', () => {
  const SA = { name: 'op', namespace: 'ops' };
  const subjects = [{ kind: 'ServiceAccount', name: 'op', namespace: 'ops' }];
  const objects: KubernetesObject[] = [
    { kind: 'ClusterRole', metadata: { name: 'watcher' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list'] }] } as KubernetesObject,
    { kind: 'ClusterRoleBinding', metadata: { name: 'watcher' }, roleRef: { kind: 'ClusterRole', name: 'watcher' }, subjects } as KubernetesObject,
    { kind: 'Role', metadata: { name: 'writer', namespace: 'ops' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }] } as KubernetesObject,
    { kind: 'RoleBinding', metadata: { name: 'writer', namespace: 'ops' }, roleRef: { kind: 'Role', name: 'writer' }, subjects } as KubernetesObject,
    // A ClusterRole bound by a RoleBinding grants its rules in that namespace only.
    { kind: 'ClusterRole', metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } as KubernetesObject,
    { kind: 'RoleBinding', metadata: { name: 'reader', namespace: 'apps' }, roleRef: { kind: 'ClusterRole', name: 'reader' }, subjects } as KubernetesObject,
    // Someone else's binding grants this account nothing.
    { kind: 'ClusterRoleBinding', metadata: { name: 'other' }, roleRef: { kind: 'ClusterRole', name: 'reader' }, subjects: [{ kind: 'ServiceAccount', name: 'other', namespace: 'ops' }] } as KubernetesObject,
  ];
  const request = (verb: string, resource: string, namespace?: string) =>
    ({ ...onResource(verb, resource, { name: 'x' }), ...(namespace ? { namespace } : {}) }) as RequestLogEntry;

  it('scopes a RoleBinding to its namespace and a ClusterRoleBinding to everywhere', () => {
    const grants = grantsFor(objects, SA);
    assert.deepEqual(grants.map((g) => [g.source, g.namespace]), [
      ['ClusterRole watcher', undefined],
      ['Role writer in ops', 'ops'],
      ['ClusterRole reader in apps', 'apps'],
    ]);
    const requests = [request('list', 'configmaps', 'anywhere'), request('create', 'secrets', 'ops'), request('create', 'secrets', 'apps'), request('get', 'pods', 'apps'), request('get', 'pods', 'ops')];
    assert.deepEqual(deniedRequests(grants, requests).map((r) => `${r.verb} ${r.resource} ${r.namespace}`), ['create secrets apps', 'get pods ops']);
    assert.deepEqual(unusedPermissions(grants, [request('get', 'pods', 'ops')]).map((u) => u.source), ['ClusterRole watcher', 'Role writer in ops', 'ClusterRole reader in apps']);
  });

  it('refuses a binding to a role that is not there', () => {
    assert.throws(() => grantsFor([objects[3]!], SA), /missing Role writer/);
  });
});
