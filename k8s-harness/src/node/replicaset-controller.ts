// The ReplicaSet controller's I/O: pods created from the template and deleted by planReplicaSet.
import type { V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { StatusMemo, type ControllerContext } from './controller-context.ts';
import { errorMessage, Expectations, isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { controllerOf, isControlledBy, nowSeconds, podFromTemplate, randomSuffix } from './owners.ts';
import { planReplicaSet } from './replicaset.ts';

const placeholder = (name: string): V1Pod => ({ metadata: { name }, status: { phase: 'Pending' } });

export function startReplicaSetController(ctx: ControllerContext): WorkQueue {
  const { kube, caches, events } = ctx;
  const memo = new StatusMemo();
  const expectations = new Expectations();
  const asReplicaSet = (rs: V1ReplicaSet): V1ReplicaSet => ({ ...rs, apiVersion: 'apps/v1', kind: 'ReplicaSet' });

  async function reconcile(key: Key): Promise<number | void> {
    const { namespace, name } = splitKey(key);
    const rs = caches.replicaSets.get(namespace, name);
    if (!rs) return;
    const uid = rs.metadata?.uid ?? '';
    const observed = caches.pods.list(namespace).filter((p) => isControlledBy(p, rs));
    const now = nowSeconds();
    const actions = planReplicaSet(rs, expectations.adjust(uid, observed, placeholder), now);
    // Like upstream's manageReplicas: the first failed create stops this round; its error goes into
    // the status (ReplicaFailure) and is then returned, so the queue retries with back-off.
    let manageError: unknown;
    if (!rs.metadata?.deletionTimestamp) {
      for (let i = 0; i < actions.create; i++) {
        const podName = `${name}-${randomSuffix()}`;
        const pod = podFromTemplate(rs.spec?.template, asReplicaSet(rs), podName);
        expectations.expectCreate(uid, podName);
        try {
          await kube.core.createNamespacedPod({ namespace, body: pod });
          events.emit(asReplicaSet(rs), 'Normal', 'SuccessfulCreate', `Created pod: ${podName}`);
        } catch (error) {
          expectations.forget(uid);
          events.emit(asReplicaSet(rs), 'Warning', 'FailedCreate', `Error creating: ${errorMessage(error)}`);
          manageError = error;
          break;
        }
      }
    }
    for (const podName of manageError === undefined ? actions.delete : []) {
      expectations.expectDelete(uid, podName);
      try {
        await kube.core.deleteNamespacedPod({ namespace, name: podName });
        events.emit(asReplicaSet(rs), 'Normal', 'SuccessfulDelete', `Deleted pod: ${podName}`);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    const { status, requeueAfterMs } = planReplicaSet(rs, observed, now, manageError === undefined ? undefined : errorMessage(manageError));
    await memo.write(uid, status, rs.status, () => kube.apps.patchNamespacedReplicaSetStatus({ namespace, name, body: { status } }, mergePatch));
    if (manageError !== undefined) throw manageError;
    return requeueAfterMs;
  }

  const queue = new WorkQueue('replicaset', reconcile, ctx.log);
  caches.replicaSets.on((rs, event) => {
    if (event === 'delete') {
      memo.forget(rs.metadata?.uid ?? '');
      expectations.forget(rs.metadata?.uid ?? '');
    }
    queue.add(keyOf(rs));
  });
  caches.pods.on((pod) => {
    const ref = controllerOf(pod);
    if (ref?.kind === 'ReplicaSet') queue.add(`${pod.metadata?.namespace}/${ref.name}`);
  });
  for (const rs of caches.replicaSets.list()) queue.add(keyOf(rs));
  return queue;
}
