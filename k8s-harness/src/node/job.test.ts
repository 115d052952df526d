import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { jobPodLabels, planJob } from './job.ts';

const T0 = Date.parse('2025-01-01T00:00:00Z');

function job(spec: Partial<NonNullable<V1Job['spec']>> = {}, status?: V1Job['status']): V1Job {
  const template = { spec: { containers: [], restartPolicy: 'Never' } };
  return { metadata: { name: 'build', namespace: 'n', uid: 'job-uid' }, spec: { ...spec, template: spec.template ?? template }, ...(status ? { status } : {}) };
}
function pod(name: string, phase: string, finishedAt = T0, restarts = 0): V1Pod {
  return {
    metadata: { name, creationTimestamp: new Date(T0) },
    status: {
      phase,
      containerStatuses: [{ name: 'c', image: 'i', imageID: '', ready: false, restartCount: restarts, ...(phase === 'Succeeded' || phase === 'Failed' ? { state: { terminated: { exitCode: phase === 'Failed' ? 1 : 0, finishedAt: new Date(finishedAt) } } } : {}) }],
    },
  };
}

describe('Job controller decisions', () => {
  it('labels its pods with the controller uid and job name', () => {
    assert.deepEqual(jobPodLabels(job()), {
      'controller-uid': 'job-uid', 'job-name': 'build', 'batch.kubernetes.io/controller-uid': 'job-uid', 'batch.kubernetes.io/job-name': 'build',
    });
  });
  it('starts one pod and records the start time', () => {
    const plan = planJob(job(), [], T0);
    assert.equal(plan.create, 1);
    assert.equal(plan.status.startTime?.getTime(), T0);
    assert.equal(plan.status.active, 0);
  });
  it('is Complete when the pod succeeded, with completionTime', () => {
    const plan = planJob(job(undefined, { startTime: new Date(T0) }), [pod('p1', 'Succeeded')], T0 + 5000);
    assert.equal(plan.create, 0);
    assert.equal(plan.status.succeeded, 1);
    assert.equal(plan.status.completionTime?.getTime(), T0 + 5000);
    assert.deepEqual(plan.status.conditions?.map((c) => [c.type, c.status]), [['Complete', 'True']]);
  });
  it('replaces a failed pod after a back-off that doubles with each failure', () => {
    const j = job({ backoffLimit: 3 }, { startTime: new Date(T0) });
    const failures = [pod('p1', 'Failed', T0), pod('p2', 'Failed', T0 + 1000)];
    const early = planJob(j, failures, T0 + 2000);
    assert.equal(early.create, 0);
    assert.equal(early.requeueAfterMs, 1000);
    assert.equal(planJob(j, failures, T0 + 3000).create, 1);
  });
  it('fails with BackoffLimitExceeded once failures exceed backoffLimit', () => {
    const j = job({ backoffLimit: 1 }, { startTime: new Date(T0) });
    const plan = planJob(j, [pod('p1', 'Failed'), pod('p2', 'Failed')], T0 + 10_000);
    assert.equal(plan.create, 0);
    assert.equal(plan.status.failed, 2);
    const failed = plan.status.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.status, 'True');
    assert.equal(failed?.reason, 'BackoffLimitExceeded');
    assert.equal(plan.status.completionTime, undefined);
  });
  it('counts container restarts against backoffLimit under restartPolicy OnFailure', () => {
    const j = job({ backoffLimit: 2, template: { spec: { containers: [], restartPolicy: 'OnFailure' } } }, { startTime: new Date(T0) });
    const plan = planJob(j, [pod('p1', 'Running', T0, 2)], T0 + 1000);
    assert.equal(plan.status.conditions?.find((c) => c.type === 'Failed')?.reason, 'BackoffLimitExceeded');
    assert.deepEqual(plan.delete, ['p1']);
  });
  it('fails with DeadlineExceeded after activeDeadlineSeconds, stopping active pods', () => {
    const j = job({ activeDeadlineSeconds: 10 }, { startTime: new Date(T0) });
    assert.equal(planJob(j, [pod('p1', 'Running')], T0 + 4000).requeueAfterMs, 6000);
    const plan = planJob(j, [pod('p1', 'Running')], T0 + 10_000);
    assert.equal(plan.status.conditions?.find((c) => c.type === 'Failed')?.reason, 'DeadlineExceeded');
    assert.deepEqual(plan.delete, ['p1']);
  });
  it('runs parallelism pods at a time up to the remaining completions', () => {
    const j = job({ completions: 3, parallelism: 2 }, { startTime: new Date(T0) });
    assert.equal(planJob(j, [], T0).create, 2);
    assert.equal(planJob(j, [pod('a', 'Succeeded'), pod('b', 'Succeeded'), pod('c', 'Running')], T0).create, 0);
    assert.equal(planJob(j, [pod('a', 'Succeeded'), pod('b', 'Succeeded')], T0).create, 1);
  });
  it('a work queue (parallelism without completions) is done when one succeeded and none runs', () => {
    const j = job({ parallelism: 2 }, { startTime: new Date(T0) });
    const running = planJob(j, [pod('a', 'Succeeded'), pod('b', 'Running')], T0);
    assert.equal(running.create, 0);
    assert.equal(running.status.conditions?.length ?? 0, 0);
    assert.equal(planJob(j, [pod('a', 'Succeeded'), pod('b', 'Succeeded')], T0).status.conditions?.[0]?.type, 'Complete');
  });
  it('deletes a finished Job once ttlSecondsAfterFinished has passed', () => {
    const done = job({ ttlSecondsAfterFinished: 5 }, {
      startTime: new Date(T0), completionTime: new Date(T0 + 1000), succeeded: 1,
      conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: new Date(T0 + 1000) }],
    });
    const early = planJob(done, [pod('p', 'Succeeded')], T0 + 2000);
    assert.equal(early.deleteJob, false);
    assert.equal(early.requeueAfterMs, 4000);
    assert.equal(planJob(done, [pod('p', 'Succeeded')], T0 + 6000).deleteJob, true);
  });
});
