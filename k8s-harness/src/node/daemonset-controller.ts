// The DaemonSet controller's I/O: the node's daemon pod created from the template (named
// `<ds>-<5 random chars>`, labelled with the revision hash and template generation, bound to this
// node by affinity), pods deleted as planDaemonSet says, and the status. A create the API refuses
// is a FailedCreate Warning event and the work queue's back-off, as for ReplicaSets.
import type { V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { StatusMemo, type ControllerContext } from './controller-context.ts';
import { daemonPodLabels, daemonPodTemplate, planDaemonSet } from './daemonset.ts';
import { errorMessage, Expectations, isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { controllerOf, isControlledBy, nowSeconds, podFromTemplate, randomSuffix } from './owners.ts';

/** A pod just created, until the cache shows it: of the current revision, so that it is not replaced. */
const placeholder = (labels: Record<string, string>) => (name: string): V1Pod => ({ metadata: { name, labels, creationTimestamp: new Date() }, status: { phase: 'Pending' } });

export function startDaemonSetController(ctx: ControllerContext): WorkQueue {
  const { kube, caches, events, nodeName } = ctx;
  const memo = new StatusMemo();
  const expectations = new Expectations();
  const asDaemonSet = (ds: V1DaemonSet): V1DaemonSet => ({ ...ds, apiVersion: 'apps/v1', kind: 'DaemonSet' });

  async function reconcile(key: Key): Promise<number | void> {
    const { namespace, name } = splitKey(key);
    const ds = caches.daemonSets.get(namespace, name);
    if (!ds) return;
    const uid = ds.metadata?.uid ?? '';
    const observed = caches.pods.list(namespace).filter((p) => isControlledBy(p, ds));
    const now = nowSeconds();
    // A pod this controller just deleted counts as terminating until the cache shows it so: its
    // replacement comes only once it is gone, as upstream's podsShouldBeOnNode has it.
    const adjusted = expectations.adjust(uid, observed, placeholder(daemonPodLabels(ds)));
    const kept = new Set(adjusted);
    const deleting = observed.filter((p) => !kept.has(p)).map((p) => ({ ...p, metadata: { ...p.metadata, deletionTimestamp: p.metadata?.deletionTimestamp ?? new Date(now) } }));
    const plan = planDaemonSet(ds, [...adjusted, ...deleting], now);
    let manageError: unknown;
    if (!ds.metadata?.deletionTimestamp) {
      for (const podName of plan.delete) {
        expectations.expectDelete(uid, podName);
        try {
          await kube.core.deleteNamespacedPod({ namespace, name: podName });
          events.emit(asDaemonSet(ds), 'Normal', 'SuccessfulDelete', `Deleted pod: ${podName}`);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      if (plan.create) {
        const podName = `${name}-${randomSuffix()}`;
        const pod = podFromTemplate(daemonPodTemplate(ds, nodeName), asDaemonSet(ds), podName, daemonPodLabels(ds));
        expectations.expectCreate(uid, podName);
        try {
          await kube.core.createNamespacedPod({ namespace, body: pod });
          events.emit(asDaemonSet(ds), 'Normal', 'SuccessfulCreate', `Created pod: ${podName}`);
        } catch (error) {
          expectations.forget(uid);
          events.emit(asDaemonSet(ds), 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
          manageError = error;
        }
      }
    }
    const { status, requeueAfterMs } = planDaemonSet(ds, observed, now);
    await memo.write(uid, status, ds.status, () => kube.apps.patchNamespacedDaemonSetStatus({ namespace, name, body: { status } }, mergePatch));
    if (manageError !== undefined) throw manageError;
    return requeueAfterMs;
  }

  const queue = new WorkQueue('daemonset', reconcile, ctx.log);
  caches.daemonSets.on((ds, event) => {
    if (event === 'delete') {
      memo.forget(ds.metadata?.uid ?? '');
      expectations.forget(ds.metadata?.uid ?? '');
    }
    queue.add(keyOf(ds));
  });
  caches.pods.on((pod) => {
    const ref = controllerOf(pod);
    if (ref?.kind === 'DaemonSet') queue.add(`${pod.metadata?.namespace}/${ref.name}`);
  });
  for (const ds of caches.daemonSets.list()) queue.add(keyOf(ds));
  return queue;
}
