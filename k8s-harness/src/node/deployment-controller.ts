// The Deployment controller's I/O: reads the caches, applies planDeployment's decisions.
import type { V1Deployment, V1ReplicaSet } from '@kubernetes/client-node';
import { StatusMemo, type ControllerContext } from './controller-context.ts';
import { planDeployment, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL, templateHash } from './deployment.ts';
import { isConflict, isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { controllerOf, isControlledBy, isTerminalPod, nowSeconds } from './owners.ts';

export function startDeploymentController(ctx: ControllerContext): WorkQueue {
  const { kube, caches, events } = ctx;
  const memo = new StatusMemo();
  const asDeployment = (d: V1Deployment): V1Deployment => ({ ...d, apiVersion: 'apps/v1', kind: 'Deployment' });

  async function reconcile(key: Key): Promise<number | void> {
    const { namespace, name } = splitKey(key);
    const deployment = caches.deployments.get(namespace, name);
    if (!deployment || deployment.metadata?.deletionTimestamp) return;
    const owned = caches.replicaSets.list(namespace).filter((rs) => isControlledBy(rs, deployment));
    const hash = templateHash(deployment);
    const olds = owned.filter((rs) => rs.metadata?.labels?.[TEMPLATE_HASH_LABEL] !== hash);
    // Recreate waits for old pods to be gone, not merely terminating.
    const oldPods = caches.pods.list(namespace).filter((p) => !isTerminalPod(p) && olds.some((rs) => isControlledBy(p, rs))).length;
    const plan = planDeployment(deployment, owned, oldPods, nowSeconds());

    let revision = owned.find((rs) => rs.metadata?.labels?.[TEMPLATE_HASH_LABEL] === hash)?.metadata?.annotations?.[REVISION_ANNOTATION];
    if (plan.create) {
      revision = plan.create.metadata?.annotations?.[REVISION_ANNOTATION];
      try {
        await kube.apps.createNamespacedReplicaSet({ namespace, body: plan.create });
        events.emit(asDeployment(deployment), 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${plan.create.metadata?.name} from 0 to ${plan.create.spec?.replicas}`);
      } catch (error) {
        if (!isConflict(error)) throw error;
        const clash = await kube.apps.readNamespacedReplicaSet({ namespace, name: plan.create.metadata?.name ?? '' }).catch(() => undefined);
        if (clash && !isControlledBy(clash, deployment)) {
          // A ReplicaSet of that name belongs to someone else: hash again with a bumped collisionCount.
          const collisionCount = (deployment.status?.collisionCount ?? 0) + 1;
          await kube.apps.patchNamespacedDeploymentStatus({ namespace, name, body: { status: { collisionCount } } }, mergePatch);
        }
        return 100;
      }
    }
    for (const scale of plan.scale) {
      const before = owned.find((rs) => rs.metadata?.name === scale.name)?.spec?.replicas ?? 0;
      try {
        await kube.apps.patchNamespacedReplicaSet({ namespace, name: scale.name, body: { metadata: { annotations: scale.annotations }, spec: { replicas: scale.replicas } } }, mergePatch);
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      if (before !== scale.replicas) {
        events.emit(asDeployment(deployment), 'Normal', 'ScalingReplicaSet', `Scaled ${scale.replicas > before ? 'up' : 'down'} replica set ${scale.name} from ${before} to ${scale.replicas}`);
      }
    }
    for (const rsName of plan.delete) {
      await kube.apps.deleteNamespacedReplicaSet({ namespace, name: rsName }).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    }
    if (revision && deployment.metadata?.annotations?.[REVISION_ANNOTATION] !== revision) {
      await kube.apps.patchNamespacedDeployment({ namespace, name, body: { metadata: { annotations: { [REVISION_ANNOTATION]: revision } } } }, mergePatch);
    }
    const uid = deployment.metadata?.uid ?? '';
    await memo.write(uid, plan.status, deployment.status, () => kube.apps.patchNamespacedDeploymentStatus({ namespace, name, body: { status: plan.status } }, mergePatch));
    return plan.requeueAfterMs;
  }

  const queue = new WorkQueue('deployment', reconcile, ctx.log);
  const ownerKey = (rs: V1ReplicaSet): Key | undefined => {
    const ref = controllerOf(rs);
    return ref?.kind === 'Deployment' ? `${rs.metadata?.namespace}/${ref.name}` : undefined;
  };
  caches.deployments.on((d, event) => {
    if (event === 'delete') memo.forget(d.metadata?.uid ?? '');
    queue.add(keyOf(d));
  });
  caches.replicaSets.on((rs) => {
    const key = ownerKey(rs);
    if (key) queue.add(key);
  });
  caches.pods.on((pod) => {
    const ref = controllerOf(pod);
    if (ref?.kind !== 'ReplicaSet') return;
    const rs = caches.replicaSets.get(pod.metadata?.namespace ?? '', ref.name);
    const key = rs && ownerKey(rs);
    if (key) queue.add(key);
  });
  for (const d of caches.deployments.list()) queue.add(keyOf(d));
  return queue;
}
