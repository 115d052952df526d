// The Job controller's I/O: pods from the template with the Job's labels, status, and deleting a
// finished Job whose time to live is over (its pods follow through garbage collection).
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { StatusMemo, type ControllerContext } from './controller-context.ts';
import { finishedCondition, jobPodLabels, planJob } from './job.ts';
import { errorMessage, Expectations, isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { controllerOf, isControlledBy, nowSeconds, podFromTemplate, randomSuffix } from './owners.ts';

const placeholder = (name: string): V1Pod => ({ metadata: { name }, status: { phase: 'Pending' } });

export function startJobController(ctx: ControllerContext): WorkQueue {
  const { kube, caches, events } = ctx;
  const memo = new StatusMemo();
  const expectations = new Expectations();
  const asJob = (job: V1Job): V1Job => ({ ...job, apiVersion: 'batch/v1', kind: 'Job' });

  async function reconcile(key: Key): Promise<number | void> {
    const { namespace, name } = splitKey(key);
    const job = caches.jobs.get(namespace, name);
    if (!job || job.metadata?.deletionTimestamp) return;
    const uid = job.metadata?.uid ?? '';
    const observed = caches.pods.list(namespace).filter((p) => isControlledBy(p, job));
    const plan = planJob(job, expectations.adjust(uid, observed, placeholder), nowSeconds());
    if (plan.deleteJob) {
      await kube.batch.deleteNamespacedJob({ namespace, name, propagationPolicy: 'Background' }).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
      return;
    }
    for (let i = 0; i < plan.create; i++) {
      const podName = `${name}-${randomSuffix()}`;
      const pod = podFromTemplate(job.spec?.template, asJob(job), podName, jobPodLabels(job));
      expectations.expectCreate(uid, podName);
      try {
        await kube.core.createNamespacedPod({ namespace, body: pod });
        events.emit(asJob(job), 'Normal', 'SuccessfulCreate', `Created pod: ${podName}`);
      } catch (error) {
        expectations.forget(uid);
        events.emit(asJob(job), 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
        throw error;
      }
    }
    for (const podName of plan.delete) {
      expectations.expectDelete(uid, podName);
      try {
        await kube.core.deleteNamespacedPod({ namespace, name: podName });
        events.emit(asJob(job), 'Normal', 'SuccessfulDelete', `Deleted pod: ${podName}`);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    if (await memo.write(uid, plan.status, job.status, () => kube.batch.patchNamespacedJobStatus({ namespace, name, body: { status: plan.status } }, mergePatch))) {
      const finished = finishedCondition(job) ? undefined : finishedCondition({ status: plan.status });
      if (finished?.type === 'Complete') events.emit(asJob(job), 'Normal', 'Completed', 'Job completed');
      else if (finished) events.emit(asJob(job), 'Warning', finished.reason ?? 'Failed', finished.message ?? 'Job failed');
    }
    return plan.requeueAfterMs;
  }

  const queue = new WorkQueue('job', reconcile, ctx.log);
  caches.jobs.on((job, event) => {
    if (event === 'delete') {
      memo.forget(job.metadata?.uid ?? '');
      expectations.forget(job.metadata?.uid ?? '');
    }
    queue.add(keyOf(job));
  });
  caches.pods.on((pod) => {
    const ref = controllerOf(pod);
    if (ref?.kind === 'Job') queue.add(`${pod.metadata?.namespace}/${ref.name}`);
  });
  for (const job of caches.jobs.list()) queue.add(keyOf(job));
  return queue;
}
