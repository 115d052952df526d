import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getCondition } from '../api/conditions.ts';
import type { NixeryInstance } from '../api/types.ts';
import { testInstance } from '../test-support/fixtures.ts';
import { computeInstanceStatus } from './status.ts';

const instance: NixeryInstance = testInstance({ storage: { persistentVolume: { size: '1Gi', accessModes: ['ReadWriteOnce'] } } }, { namespace: 'ns', generation: 3 });
const bound = { metadata: { name: 'nixery-storage' }, status: { phase: 'Bound' } };
const deployment = (ready: number) => ({ metadata: { generation: 1 }, status: { observedGeneration: 1, readyReplicas: ready, updatedReplicas: 1 } });

describe('NixeryInstance status', () => {
  it('is Ready only with a ready replica that answers /v2/', () => {
    const ready = computeInstanceStatus(instance, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true }, 't');
    assert.equal(getCondition(ready.conditions, 'Ready')!.status, 'True');
    assert.equal(ready.endpoint, 'nixery.ns.svc.cluster.local:5000');
    assert.equal(ready.observedGeneration, 3);
    assert.equal(ready.readyReplicas, 1);
    assert.equal(getCondition(ready.conditions, 'Progressing')!.status, 'False');

    const silent = computeInstanceStatus(instance, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: false, registryError: 'ECONNREFUSED' }, 't');
    assert.equal(getCondition(silent.conditions, 'Ready')!.status, 'False');
    assert.equal(getCondition(silent.conditions, 'Degraded')!.reason, 'RegistryNotAnswering');

    const starting = computeInstanceStatus(instance, { deployment: deployment(0), persistentVolumeClaim: bound }, 't');
    assert.equal(getCondition(starting.conditions, 'Ready')!.reason, 'WaitingForPods');
    assert.equal(getCondition(starting.conditions, 'Progressing')!.status, 'True');
  });

  it('says why when the spec cannot work: a missing Secret, an unbound volume', () => {
    const secret = computeInstanceStatus(instance, { deployment: deployment(0), missingSecret: 'gcs-key' }, 't');
    assert.deepEqual(
      [getCondition(secret.conditions, 'Degraded')!.reason, getCondition(secret.conditions, 'Ready')!.reason],
      ['SecretNotFound', 'SecretNotFound'],
    );
    const pending = computeInstanceStatus(instance, { deployment: deployment(0), persistentVolumeClaim: { metadata: { name: 'nixery-storage' }, status: { phase: 'Pending' } } }, 't');
    assert.equal(getCondition(pending.conditions, 'Degraded')!.reason, 'VolumeNotBound');
    assert.match(getCondition(pending.conditions, 'Degraded')!.message!, /nixery-storage is Pending/);
  });

  it('is not Ready, and Degraded, with reason Conflict naming the object, while an object of its names is not its own', () => {
    const why = 'it has no controller reference to NixeryInstance nixery';
    const status = computeInstanceStatus(instance, { conflict: { kind: 'Deployment', name: 'nixery', namespace: 'ns', why } }, 't');
    const ready = getCondition(status.conditions, 'Ready')!;
    assert.deepEqual([ready.status, ready.reason, getCondition(status.conditions, 'Degraded')!.status, getCondition(status.conditions, 'Degraded')!.reason], ['False', 'Conflict', 'True', 'Conflict']);
    assert.equal(ready.message, `Deployment nixery exists and is not this NixeryInstance's (${why}); it is left untouched until it is deleted or given to this instance`);
    const elsewhere = computeInstanceStatus(instance, { conflict: { kind: 'Secret', name: 'nixery-pull', namespace: 'apps', why } }, 't');
    assert.match(getCondition(elsewhere.conditions, 'Ready')!.message!, /^Secret apps\/nixery-pull exists/, 'another namespace is named');
    const stale = computeInstanceStatus(instance, { deployment: deployment(1), registryAnswers: true, conflict: { kind: 'ClusterRoleBinding', name: 'b', why } }, 't');
    assert.equal(getCondition(stale.conditions, 'Ready')!.reason, 'Conflict', 'a running registry does not make it Ready');
  });

  it('does not move lastTransitionTime when nothing changed', () => {
    const first = computeInstanceStatus(instance, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true }, 't1');
    const again = computeInstanceStatus({ ...instance, status: first }, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true }, 't2');
    assert.deepEqual(again, first);
  });

  it('keeps Ready as it is when spec.nodeLocal is refused, and says so in NodeLocalReady and Degraded', () => {
    const edge = { ...instance, spec: { ...instance.spec, nodeLocal: { enabled: true, hostPort: 5000 } } };
    const refusals = { nodeLocal: 'spec.nodeLocal needs the operator started with --allow-node-local' };
    const ready = computeInstanceStatus(edge, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true, refusals }, 't');
    assert.equal(getCondition(ready.conditions, 'Ready')!.status, 'True');
    assert.deepEqual(
      ['NodeLocalReady', 'Degraded'].map((type) => { const c = getCondition(ready.conditions, type)!; return `${c.status} ${c.reason} ${c.message}`; }),
      ['False NotAllowed ' + refusals.nodeLocal, 'True NotAllowed ' + refusals.nodeLocal],
    );
    // A worse problem keeps Degraded; NodeLocalReady still says why there is no DaemonSet.
    const unbound = computeInstanceStatus(edge, { deployment: deployment(0), persistentVolumeClaim: { metadata: { name: 'nixery-storage' }, status: { phase: 'Pending' } }, refusals }, 't');
    assert.equal(getCondition(unbound.conditions, 'Degraded')!.reason, 'VolumeNotBound');
    assert.equal(getCondition(unbound.conditions, 'NodeLocalReady')!.reason, 'NotAllowed');
    // No nodeLocal asked for, no NodeLocalReady, even from an earlier status.
    const off = computeInstanceStatus({ ...instance, status: ready }, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true }, 't');
    assert.equal(getCondition(off.conditions, 'NodeLocalReady'), undefined);
  });

  it('is never Ready with a refused image, even while an earlier Deployment serves', () => {
    const refusals = { image: 'spec.image example.com/x:1 is not allowed by the operator' };
    const status = computeInstanceStatus(instance, { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true, refusals }, 't');
    assert.deepEqual(
      ['Ready', 'Degraded'].map((type) => { const c = getCondition(status.conditions, type)!; return `${c.status} ${c.reason} ${c.message}`; }),
      ['False ImageNotAllowed ' + refusals.image, 'True ImageNotAllowed ' + refusals.image],
    );
  });
});

describe('NodeConfigReady', () => {
  const configured = { ...instance, spec: { ...instance.spec, nodeConfig: { enabled: true } } };
  const base = { deployment: deployment(1), persistentVolumeClaim: bound, registryAnswers: true };
  const nodeConfig = (ready: number, desired = 3) => ({ status: { desiredNumberScheduled: desired, numberReady: ready, currentNumberScheduled: desired, numberMisscheduled: 0 } });
  const of = (status: ReturnType<typeof computeInstanceStatus>, type: string) => { const c = getCondition(status.conditions, type); return c && `${c.status} ${c.reason}`; };

  it('refused: NotAllowed naming the flag, Degraded NotAllowed, Ready untouched', () => {
    const refusals = { nodeConfig: 'spec.nodeConfig needs the operator started with --allow-node-config' };
    const status = computeInstanceStatus(configured, { ...base, refusals }, 't');
    assert.equal(of(status, 'Ready'), 'True RegistryAnswering');
    assert.equal(getCondition(status.conditions, 'NodeConfigReady')!.message, refusals.nodeConfig);
    assert.equal(of(status, 'NodeConfigReady'), 'False NotAllowed');
    assert.equal(of(status, 'Degraded'), 'True NotAllowed');
  });

  it("follows the DaemonSet's ready and desired pods, pointing at the logs while some are not ready", () => {
    assert.equal(of(computeInstanceStatus(configured, base, 't'), 'NodeConfigReady'), 'False WaitingForService');
    const partly = computeInstanceStatus(configured, { ...base, nodeConfig: nodeConfig(2) }, 't');
    assert.equal(of(partly, 'NodeConfigReady'), 'False WaitingForNodes');
    assert.match(getCondition(partly.conditions, 'NodeConfigReady')!.message!, /^2 of 3 nodes configured; .*kubectl logs -n ns -l app\.kubernetes\.io\/name=nixery-node-config,app\.kubernetes\.io\/instance=nixery.*config_path/);
    assert.equal(of(partly, 'Degraded'), 'False AsExpected', 'a node not yet configured does not degrade the registry');
    assert.equal(of(computeInstanceStatus(configured, { ...base, nodeConfig: nodeConfig(0, 0) }, 't'), 'NodeConfigReady'), 'False WaitingForNodes');
    const all = computeInstanceStatus(configured, { ...base, nodeConfig: nodeConfig(3) }, 't');
    assert.equal(of(all, 'NodeConfigReady'), 'True Configured');
    assert.equal(of(computeInstanceStatus({ ...instance, status: all }, base, 't'), 'NodeConfigReady'), undefined, 'turned off: the condition goes');
  });
});
