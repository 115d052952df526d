// The ReplicaSet controller's decisions: how many pods to create, which to delete, and the status.
import type { V1Pod, V1ReplicaSet, V1ReplicaSetStatus } from '@kubernetes/client-node';
import { matchesSelector } from './labels.ts';
import { isActivePod, isPodReady, toMillis } from './owners.ts';

export interface ReplicaSetPlan {
  create: number;
  /** names of the pods to delete, the least useful first */
  delete: string[];
  status: V1ReplicaSetStatus;
  /** reconcile again then: a ready pod becomes available after minReadySeconds */
  requeueAfterMs?: number;
}

/** When a pod counts as available: Ready for at least minReadySeconds (undefined: not yet). */
export function availableSince(pod: V1Pod, minReadySeconds: number): number | undefined {
  if (!isPodReady(pod)) return undefined;
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  const since = toMillis(ready?.lastTransitionTime) ?? 0;
  return since + minReadySeconds * 1000;
}

/** `owned`: the pods whose controller reference is this ReplicaSet. */
export function planReplicaSet(rs: V1ReplicaSet, owned: readonly V1Pod[], now: number): ReplicaSetPlan {
  const active = owned.filter(isActivePod);
  const want = rs.spec?.replicas ?? 1;
  const minReady = rs.spec?.minReadySeconds ?? 0;
  const diff = want - active.length;
  const toDelete = diff < 0 ? [...active].sort(deletionOrder).slice(0, -diff).map((p) => p.metadata?.name ?? '') : [];

  let available = 0;
  let nextAvailable: number | undefined;
  for (const pod of active) {
    const at = availableSince(pod, minReady);
    if (at === undefined) continue;
    if (at <= now) available++;
    else nextAvailable = Math.min(nextAvailable ?? Infinity, at);
  }
  const status: V1ReplicaSetStatus = {
    replicas: active.length,
    fullyLabeledReplicas: active.filter((p) => matchesSelector({ matchLabels: rs.spec?.template?.metadata?.labels ?? {} }, p.metadata?.labels)).length,
    readyReplicas: active.filter(isPodReady).length,
    availableReplicas: available,
    observedGeneration: rs.metadata?.generation ?? 0,
  };
  const plan: ReplicaSetPlan = { create: Math.max(0, diff), delete: toDelete, status };
  if (nextAvailable !== undefined) plan.requeueAfterMs = Math.max(0, nextAvailable - now);
  return plan;
}

const PHASE_RANK: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

/** The ReplicaSet controller's preference: unscheduled, pending, unready, restarted more, newer go first. */
function deletionOrder(a: V1Pod, b: V1Pod): number {
  const scheduled = Number(Boolean(a.spec?.nodeName)) - Number(Boolean(b.spec?.nodeName));
  if (scheduled !== 0) return scheduled;
  const phase = (PHASE_RANK[a.status?.phase ?? 'Pending'] ?? 0) - (PHASE_RANK[b.status?.phase ?? 'Pending'] ?? 0);
  if (phase !== 0) return phase;
  const ready = Number(isPodReady(a)) - Number(isPodReady(b));
  if (ready !== 0) return ready;
  const restarts = restartsOf(b) - restartsOf(a);
  if (restarts !== 0) return restarts;
  return (toMillis(b.metadata?.creationTimestamp) ?? 0) - (toMillis(a.metadata?.creationTimestamp) ?? 0);
}

function restartsOf(pod: V1Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((sum, c) => sum + (c.restartCount ?? 0), 0);
}
