import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubernetesObject } from '@kubernetes/client-node';
import { apiError } from '../test-support/fakes.ts';
import { Applier, OwnershipConflictError, type ObjectApi } from './applier.ts';

const owner = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', name: 'web', uid: 'uid-1', controller: true, blockOwnerDeletion: true };
const desired = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'team-a', labels: { 'app.kubernetes.io/managed-by': 'nixery-operator' }, ownerReferences: [owner] },
  spec: { replicas: 1 },
};
const labels = { 'app.kubernetes.io/managed-by': 'nixery-operator', 'app.kubernetes.io/instance': 'web', 'nixery.dev/instance-namespace': 'team-a', 'app.kubernetes.io/component': 'auth-delegator' };
const binding = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'nixery.team-a.web.auth-delegator', labels }, roleRef: { name: 'system:auth-delegator' } };

/** Objects with a spec or status: KubernetesObject names only the common fields. */
const asObject = (object: object) => object as KubernetesObject;

/** An applier over a fake API server holding `existing`; `calls` lists its requests. */
function applierOver(existing?: KubernetesObject) {
  const calls: string[] = [];
  const api = {
    read: async (header: KubernetesObject) => {
      calls.push(`read ${header.kind} ${header.metadata!.name}`);
      if (!existing) throw apiError(404);
      return existing;
    },
    patch: async (object: KubernetesObject) => {
      calls.push(`apply ${object.kind} ${object.metadata!.name}`);
      return object;
    },
  } as unknown as ObjectApi;
  return { applier: new Applier(api), calls };
}

describe('the applier', () => {
  it('makes no request for a cached object that holds everything desired', async () => {
    const { applier, calls } = applierOver();
    assert.equal(await applier.apply(desired, asObject({ ...desired, status: { readyReplicas: 1 } })), 'unchanged');
    assert.deepEqual(calls, []);
  });

  it('applies over a cached object of its owner that differs, without asking first', async () => {
    const { applier, calls } = applierOver();
    assert.equal(await applier.apply(desired, asObject({ ...desired, spec: { replicas: 0 } })), 'applied');
    assert.deepEqual(calls, ['apply Deployment web']);
  });

  it('asks the API server on a cache miss (the caches show only labelled objects) and creates what is not there', async () => {
    const { applier, calls } = applierOver();
    assert.equal(await applier.apply(desired, undefined), 'applied');
    assert.deepEqual(calls, ['read Deployment web', 'apply Deployment web']);
  });

  it('writes nothing over an object of that name without the owner’s controller reference, and says whose it is not', async () => {
    const unrelated = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'team-a' }, spec: { replicas: 3 } };
    const { applier, calls } = applierOver(unrelated);
    await assert.rejects(applier.apply(desired, undefined), (error: unknown) => {
      assert.ok(error instanceof OwnershipConflictError);
      assert.deepEqual([error.kind, error.objectName, error.namespace, error.why], ['Deployment', 'web', 'team-a', 'it has no controller reference to NixeryInstance web']);
      return true;
    });
    assert.deepEqual(calls, ['read Deployment web']);

    const another = { ...desired, metadata: { ...desired.metadata, ownerReferences: [{ ...owner, uid: 'uid-0' }] } };
    const cached = applierOver();
    await assert.rejects(cached.applier.apply(desired, another), /its controller is NixeryInstance web \(uid uid-0\)/);
    assert.deepEqual(cached.calls, [], 'an earlier owner of the same name, in the cache: no request either');
  });

  it('takes an object the API server answered with as it is: absent means create, no second read', async () => {
    const { applier, calls } = applierOver();
    await applier.apply(desired, undefined, 'server');
    assert.deepEqual(calls, ['apply Deployment web']);
  });

  it('tells an object that cannot have an owner reference by its owner labels', async () => {
    const ours = applierOver(asObject({ ...binding, metadata: { ...binding.metadata, labels: { ...labels, 'app.kubernetes.io/component': 'older-name' } }, roleRef: { name: 'x' } }));
    assert.equal(await ours.applier.apply(binding, undefined), 'applied', 'the component label is content, not identity');
    const otherNamespace = applierOver({ ...binding, metadata: { ...binding.metadata, labels: { ...labels, 'nixery.dev/instance-namespace': 'team-b' } } });
    await assert.rejects(otherNamespace.applier.apply(binding, undefined), /ClusterRoleBinding nixery\.team-a\.web\.auth-delegator .*it lacks the labels nixery\.dev\/instance-namespace=team-a/);
    assert.deepEqual(otherNamespace.calls, ['read ClusterRoleBinding nixery.team-a.web.auth-delegator']);
  });

  it('refuses to apply an object that names no owner at all', async () => {
    const { applier, calls } = applierOver({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'loose', namespace: 'team-a' } });
    await assert.rejects(applier.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'loose', namespace: 'team-a' }, data: {} }, undefined), OwnershipConflictError);
    assert.deepEqual(calls, ['read ConfigMap loose']);
  });
});
