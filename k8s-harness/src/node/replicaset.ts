// The ReplicaSet controller's decisions: how many pods to create, which to delete, and the status.
import type { V1Pod, V1ReplicaSet, V1ReplicaSetCondition, V1ReplicaSetStatus } from '@kubernetes/client-node';
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

/**
 * `owned`: the pods whose controller reference is this ReplicaSet. `manageError`: the message of
 * the error that creating or deleting pods just ran into (upstream's manageReplicasErr), which
 * becomes a ReplicaFailure condition; without one that condition goes.
 */
export function planReplicaSet(rs: V1ReplicaSet, owned: readonly V1Pod[], now: number, manageError?: string): ReplicaSetPlan {
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
  const conditions = replicaFailure(rs, active.length - want, now, manageError);
  if (conditions !== undefined) status.conditions = conditions;
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

/**
 * The status conditions after a sync, as calculateStatus: an error adds ReplicaFailure (reason
 * FailedCreate when pods were missing, FailedDelete when there were too many) unless one is there,
 * success removes it. `null` clears the list in a merge patch when the last condition goes;
 * undefined: no conditions before or after.
 */
function replicaFailure(rs: V1ReplicaSet, diff: number, now: number, manageError: string | undefined): V1ReplicaSetCondition[] | undefined {
  const existing = rs.status?.conditions ?? [];
  const failure = existing.find((c) => c.type === 'ReplicaFailure');
  let next = existing;
  if (manageError !== undefined && !failure) {
    const reason = diff < 0 ? 'FailedCreate' : diff > 0 ? 'FailedDelete' : '';
    next = [...existing, { type: 'ReplicaFailure', status: 'True', lastTransitionTime: new Date(now), reason, message: manageError }];
  } else if (manageError === undefined && failure) {
    next = existing.filter((c) => c !== failure);
  }
  if (next.length > 0) return next;
  return existing.length > 0 ? (null as unknown as V1ReplicaSetCondition[]) : undefined;
}
