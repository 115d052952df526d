import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { planReplicaSet } from './replicaset.ts';

const NOW = Date.parse('2025-01-01T00:01:00Z');
const rs: V1ReplicaSet = {
  metadata: { name: 'web-abc', namespace: 'shop', uid: 'rs', generation: 2 },
  spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } } } },
};

function pod(name: string, state: { phase?: string; ready?: boolean; readySince?: string; deleting?: boolean; created?: string } = {}): V1Pod {
  return {
    metadata: {
      name,
      labels: { app: 'web' },
      creationTimestamp: new Date(state.created ?? '2025-01-01T00:00:00Z'),
      ...(state.deleting ? { deletionTimestamp: new Date(NOW) } : {}),
    },
    spec: { nodeName: 'nixery-node', containers: [] },
    status: {
      phase: state.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: state.ready ? 'True' : 'False', lastTransitionTime: new Date(state.readySince ?? '2025-01-01T00:00:00Z') }],
    },
  };
}

describe('ReplicaSet → pods', () => {
  it('creates the missing pods; finished and deleting pods do not count', () => {
    const plan = planReplicaSet(rs, [pod('a', { ready: true }), pod('b', { phase: 'Failed' }), pod('c', { deleting: true })], NOW);
    assert.equal(plan.create, 1);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(plan.status, { replicas: 1, fullyLabeledReplicas: 1, readyReplicas: 1, availableReplicas: 1, observedGeneration: 2 });
  });
  it('deletes surplus pods, unready and newer ones first', () => {
    const plan = planReplicaSet({ ...rs, spec: { ...rs.spec!, replicas: 1 } }, [
      pod('old-ready', { ready: true }),
      pod('new-ready', { ready: true, created: '2025-01-01T00:00:30Z' }),
      pod('unready'),
    ], NOW);
    assert.deepEqual(plan.delete, ['unready', 'new-ready']);
  });
  it('a ready pod is available only after minReadySeconds, and a requeue is asked for then', () => {
    const slow = { ...rs, spec: { ...rs.spec!, minReadySeconds: 30 } };
    const plan = planReplicaSet(slow, [pod('a', { ready: true, readySince: '2025-01-01T00:00:50Z' }), pod('b', { ready: true })], NOW);
    assert.equal(plan.status.readyReplicas, 2);
    assert.equal(plan.status.availableReplicas, 1);
    assert.equal(plan.requeueAfterMs, 20_000);
  });
  it('a failed create becomes a ReplicaFailure condition (FailedCreate), kept while failing, cleared (null for the merge patch) on success', () => {
    const failing = planReplicaSet(rs, [], NOW, 'pods "web-abc-x" is forbidden: nope');
    assert.deepEqual(failing.status.conditions, [{ type: 'ReplicaFailure', status: 'True', lastTransitionTime: new Date(NOW), reason: 'FailedCreate', message: 'pods "web-abc-x" is forbidden: nope' }]);
    const failed = { ...rs, status: { replicas: 0, conditions: failing.status.conditions } };
    assert.deepEqual(planReplicaSet(failed, [], NOW + 5000, 'another error').status.conditions, failing.status.conditions);
    assert.equal(planReplicaSet(failed, [pod('a')], NOW).status.conditions, null);
  });
});
