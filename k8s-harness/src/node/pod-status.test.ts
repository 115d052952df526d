import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1ContainerState, V1Pod } from '@kubernetes/client-node';
import { podPhase, podStatus, type ContainerRecord, type PodRecord } from './pod-status.ts';

const T = new Date('2025-01-01T00:00:00Z');
function c(name: string, state: V1ContainerState, extra: Partial<ContainerRecord> = {}): ContainerRecord {
  return { name, image: 'i', imageID: '', restartCount: 0, state, ready: false, started: false, ...extra };
}
const running = { running: { startedAt: T } };
const waiting = { waiting: { reason: 'ContainerCreating' } };
const exited = (exitCode: number) => ({ terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: T, finishedAt: T } });
const record = (containers: ContainerRecord[], initContainers: ContainerRecord[] = []): PodRecord => ({ hostIP: '127.0.0.1', podIP: '127.244.0.2', containers, initContainers });

describe('pod phase (the kubelet rules)', () => {
  it('Pending while an init container has not succeeded or a container waits', () => {
    assert.equal(podPhase('Always', record([c('a', waiting)], [c('init', running)])), 'Pending');
    assert.equal(podPhase('Always', record([c('a', running), c('b', waiting)])), 'Pending');
  });
  it('Running while some container runs, or restarts under Always', () => {
    assert.equal(podPhase('Always', record([c('a', running)], [c('init', exited(0))])), 'Running');
    assert.equal(podPhase('Always', record([c('a', { waiting: { reason: 'CrashLoopBackOff' } }, { lastState: exited(1) })])), 'Running');
  });
  it('Succeeded when every container exited 0 under Never or OnFailure', () => {
    assert.equal(podPhase('Never', record([c('a', exited(0)), c('b', exited(0))])), 'Succeeded');
    assert.equal(podPhase('OnFailure', record([c('a', exited(0))])), 'Succeeded');
  });
  it('Failed when a container failed under Never; OnFailure keeps restarting', () => {
    assert.equal(podPhase('Never', record([c('a', exited(0)), c('b', exited(2))])), 'Failed');
    assert.equal(podPhase('OnFailure', record([c('a', exited(2))])), 'Running');
  });
  it('Failed when an init container failed under Never', () => {
    assert.equal(podPhase('Never', record([c('a', waiting)], [c('init', exited(1))])), 'Failed');
    assert.equal(podPhase('OnFailure', record([c('a', waiting)], [c('init', exited(1))])), 'Pending');
  });
});

describe('pod status', () => {
  const pod: V1Pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'a' }], restartPolicy: 'Always' } };
  it('is Ready when every container is ready; conditions keep their transition time while unchanged', () => {
    const first = podStatus(pod, record([c('a', running, { ready: true, started: true })]), undefined, T.getTime());
    assert.equal(first.phase, 'Running');
    const byType = Object.fromEntries((first.conditions ?? []).map((x) => [x.type, x.status]));
    assert.deepEqual(byType, { PodReadyToStartContainers: 'True', Initialized: 'True', Ready: 'True', ContainersReady: 'True', PodScheduled: 'True' });
    assert.equal(first.podIP, '127.244.0.2');
    const later = podStatus(pod, record([c('a', running, { ready: true, started: true })]), first, T.getTime() + 5000);
    assert.equal(later.conditions?.find((x) => x.type === 'Ready')?.lastTransitionTime?.getTime(), T.getTime());
  });
  it('names the unready containers', () => {
    const status = podStatus(pod, record([c('a', running)]), undefined, T.getTime());
    const ready = status.conditions?.find((x) => x.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'ContainersNotReady');
    assert.equal(ready?.message, 'containers with unready status: [a]');
  });
  it('a finished pod is not Ready (PodCompleted)', () => {
    const done = podStatus({ ...pod, spec: { ...pod.spec!, restartPolicy: 'Never' } }, record([c('a', exited(0))]), undefined, T.getTime());
    assert.equal(done.phase, 'Succeeded');
    assert.equal(done.conditions?.find((x) => x.type === 'Ready')?.reason, 'PodCompleted');
  });
});
