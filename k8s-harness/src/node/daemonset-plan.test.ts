import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { daemonPodLabels, daemonPodTemplate, daemonSetHash, planDaemonSet } from './daemonset.ts';

const NOW = Date.parse('2025-01-01T00:01:00Z');
const ds: V1DaemonSet = {
  metadata: { name: 'node-config', namespace: 'sys', uid: 'ds', generation: 3 },
  spec: { selector: { matchLabels: { app: 'nc' } }, template: { metadata: { labels: { app: 'nc' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
};
const changed: V1DaemonSet = { ...ds, metadata: { ...ds.metadata, generation: 4 }, spec: { ...ds.spec!, template: { ...ds.spec!.template, spec: { containers: [{ name: 'c', image: 'y' }] } } } };

function pod(name: string, of: V1DaemonSet, state: { phase?: string; ready?: boolean; readySince?: string; deleting?: boolean; created?: string } = {}): V1Pod {
  return {
    metadata: {
      name,
      labels: { app: 'nc', ...daemonPodLabels(of) },
      creationTimestamp: new Date(state.created ?? '2025-01-01T00:00:00Z'),
      ...(state.deleting ? { deletionTimestamp: new Date(NOW) } : {}),
    },
    status: {
      phase: state.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: state.ready ? 'True' : 'False', lastTransitionTime: new Date(state.readySince ?? '2025-01-01T00:00:00Z') }],
    },
  };
}

describe('DaemonSet → the node pod', () => {
  it('labels: the revision hash (changing with the template) and the template generation', () => {
    assert.deepEqual(daemonPodLabels(ds), { 'controller-revision-hash': daemonSetHash(ds), 'pod-template-generation': '3' });
    assert.notEqual(daemonSetHash(ds), daemonSetHash(changed));
    assert.match(daemonSetHash(ds), /^[bcdfghjklmnpqrstvwxz2456789]+$/);
  });

  it('the pod template gets the daemon tolerations and an affinity to exactly this node', () => {
    const t = daemonPodTemplate(ds, 'nixery-node');
    assert.deepEqual(t.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution, { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['nixery-node'] }] }] });
    assert.deepEqual(t.spec?.tolerations?.map((x) => `${x.key}:${x.effect}`), [
      'node.kubernetes.io/not-ready:NoExecute',
      'node.kubernetes.io/unreachable:NoExecute',
      'node.kubernetes.io/disk-pressure:NoSchedule',
      'node.kubernetes.io/memory-pressure:NoSchedule',
      'node.kubernetes.io/pid-pressure:NoSchedule',
      'node.kubernetes.io/unschedulable:NoSchedule',
    ]);
    assert.equal(ds.spec?.template.spec?.affinity, undefined, 'the DaemonSet itself is not changed');
  });

  it('no pod: one is created; the status says one desired, none scheduled', () => {
    const plan = planDaemonSet(ds, [], NOW);
    assert.equal(plan.create, true);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(plan.status, { currentNumberScheduled: 0, desiredNumberScheduled: 1, numberMisscheduled: 0, numberReady: 0, numberAvailable: 0, updatedNumberScheduled: 0, observedGeneration: 3, numberUnavailable: 1 });
  });

  it('a ready pod of the current template: nothing to do; available after minReadySeconds', () => {
    const plan = planDaemonSet(ds, [pod('a', ds, { ready: true })], NOW);
    assert.equal(plan.create, false);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(plan.status, { currentNumberScheduled: 1, desiredNumberScheduled: 1, numberMisscheduled: 0, numberReady: 1, numberAvailable: 1, updatedNumberScheduled: 1, observedGeneration: 3, numberUnavailable: null });
    const slow = planDaemonSet({ ...ds, spec: { ...ds.spec!, minReadySeconds: 30 } }, [pod('a', ds, { ready: true, readySince: '2025-01-01T00:00:50Z' })], NOW);
    assert.equal(slow.status.numberAvailable, 0);
    assert.equal(slow.requeueAfterMs, 20_000);
  });

  it('RollingUpdate: a pod of the old template is deleted; the new one comes only once it is gone', () => {
    const old = pod('a', ds, { ready: true });
    const first = planDaemonSet(changed, [old], NOW);
    assert.deepEqual(first.delete, ['a']);
    assert.equal(first.create, false);
    assert.equal(first.status.updatedNumberScheduled, 0);
    const terminating = planDaemonSet(changed, [pod('a', ds, { ready: true, deleting: true })], NOW);
    assert.deepEqual(terminating.delete, []);
    assert.equal(terminating.create, false, 'not while the old pod terminates');
    assert.equal(terminating.status.currentNumberScheduled, 1);
    assert.equal(planDaemonSet(changed, [], NOW).create, true);
  });

  it('OnDelete: an old pod stays until someone deletes it', () => {
    const onDelete = { ...changed, spec: { ...changed.spec!, updateStrategy: { type: 'OnDelete' } } };
    const plan = planDaemonSet(onDelete, [pod('a', ds, { ready: true })], NOW);
    assert.deepEqual(plan.delete, []);
    assert.equal(plan.create, false);
    assert.equal(plan.status.updatedNumberScheduled, 0);
  });

  it('a failed pod is deleted; of two running pods the newer goes; a finished pod being deleted no longer counts', () => {
    assert.deepEqual(planDaemonSet(ds, [pod('f', ds, { phase: 'Failed' })], NOW).delete, ['f']);
    assert.deepEqual(planDaemonSet(ds, [pod('new', ds, { created: '2025-01-01T00:00:30Z' }), pod('old', ds)], NOW).delete, ['new']);
    const gone = planDaemonSet(ds, [pod('f', ds, { phase: 'Failed', deleting: true })], NOW);
    assert.equal(gone.create, true);
  });
});
