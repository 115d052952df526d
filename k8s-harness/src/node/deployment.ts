// The Deployment controller's decisions: the ReplicaSet for the current template (named by the
// pod-template-hash), how far to scale new and old ReplicaSets under the strategy, which old
// ReplicaSets to forget, and the Deployment's status.
import type { V1Deployment, V1DeploymentCondition, V1DeploymentStatus, V1ReplicaSet } from '@kubernetes/client-node';
import { canonicalJson, controllerRef, fnv32a, safeEncode, toMillis } from './owners.ts';

export const TEMPLATE_HASH_LABEL = 'pod-template-hash';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
const DESIRED_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
const MAX_ANNOTATION = 'deployment.kubernetes.io/max-replicas';

/**
 * The label that ties a ReplicaSet to one version of the pod template. Like Kubernetes it is the
 * FNV-32a hash of the template (plus the collision count), safe-encoded; unlike Kubernetes it hashes
 * canonical JSON rather than Go's struct dump, so the values differ from a real cluster's.
 */
export function templateHash(deployment: V1Deployment): string {
  const template = deployment.spec?.template ?? {};
  const collision = deployment.status?.collisionCount;
  const text = canonicalJson(template) + (collision !== undefined ? String(collision) : '');
  return safeEncode(String(fnv32a(text)));
}

export interface DeploymentPlan {
  create?: V1ReplicaSet;
  /** new `spec.replicas` (and revision annotations) for existing ReplicaSets, by name */
  scale: Array<{ name: string; replicas: number; annotations: Record<string, string> }>;
  delete: string[];
  status: V1DeploymentStatus;
  requeueAfterMs?: number;
}

/** A percentage of replicas (`25%`) or a count; Kubernetes rounds surge up and unavailability down. */
export function resolveIntOrPercent(value: number | string | undefined, fallback: string, replicas: number, roundUp: boolean): number {
  const v = value ?? fallback;
  if (typeof v === 'number') return v;
  const match = /^(\d+)%$/.exec(v);
  if (!match) return Number(v) || 0;
  const exact = (Number(match[1]) * replicas) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

export function rollingParameters(deployment: V1Deployment): { maxSurge: number; maxUnavailable: number } {
  const replicas = deployment.spec?.replicas ?? 1;
  if (deployment.spec?.strategy?.type === 'Recreate') return { maxSurge: 0, maxUnavailable: 0 };
  const ru = deployment.spec?.strategy?.rollingUpdate;
  const maxSurge = resolveIntOrPercent(ru?.maxSurge as number | string | undefined, '25%', replicas, true);
  let maxUnavailable = resolveIntOrPercent(ru?.maxUnavailable as number | string | undefined, '25%', replicas, false);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) };
}

function revisionOf(rs: V1ReplicaSet): number {
  return Number(rs.metadata?.annotations?.[REVISION_ANNOTATION] ?? 0) || 0;
}

/**
 * `owned`: the ReplicaSets whose controller reference is this Deployment. `oldPods`: how many pods
 * of the old ReplicaSets still exist (Recreate waits for them to be gone before starting new ones).
 */
export function planDeployment(deployment: V1Deployment, owned: readonly V1ReplicaSet[], oldPods: number, now: number): DeploymentPlan {
  const replicas = deployment.spec?.replicas ?? 1;
  const hash = templateHash(deployment);
  const existingNew = owned.find((rs) => rs.metadata?.labels?.[TEMPLATE_HASH_LABEL] === hash);
  const olds = owned.filter((rs) => rs !== existingNew).sort((a, b) => revisionOf(a) - revisionOf(b));
  const maxOldRevision = Math.max(0, ...olds.map(revisionOf));
  const revision = existingNew && revisionOf(existingNew) > maxOldRevision ? revisionOf(existingNew) : maxOldRevision + 1;
  const { maxSurge, maxUnavailable } = rollingParameters(deployment);
  const specOf = (rs: V1ReplicaSet | undefined) => rs?.spec?.replicas ?? 0;
  const availableOf = (rs: V1ReplicaSet | undefined) => rs?.status?.availableReplicas ?? 0;

  const target = new Map<V1ReplicaSet | 'new', number>();
  const newKey = existingNew ?? 'new';
  for (const rs of olds) target.set(rs, specOf(rs));
  target.set(newKey, specOf(existingNew));
  const oldsActive = olds.filter((rs) => specOf(rs) > 0);

  if (deployment.spec?.paused) {
    if (oldsActive.length === 0) target.set(newKey, replicas);
  } else if (oldsActive.length === 0) {
    target.set(newKey, replicas);
  } else if (deployment.spec?.strategy?.type === 'Recreate') {
    for (const rs of oldsActive) target.set(rs, 0);
    target.set(newKey, oldPods === 0 ? replicas : 0);
  } else {
    const allTotal = specOf(existingNew) + olds.reduce((s, rs) => s + specOf(rs), 0);
    const room = Math.max(0, replicas + maxSurge - allTotal);
    const newReplicas = Math.min(replicas, specOf(existingNew) + room);
    target.set(newKey, Math.max(newReplicas, Math.min(specOf(existingNew), replicas)));
    // Unhealthy old pods can go first without lowering availability; then healthy ones as far
    // as the availability floor allows.
    const minAvailable = replicas - maxUnavailable;
    const newUnavailable = Math.max(0, specOf(existingNew) - availableOf(existingNew));
    let cleanup = allTotal - minAvailable - newUnavailable;
    for (const rs of oldsActive) {
      if (cleanup <= 0) break;
      const unhealthy = Math.max(0, specOf(rs) - availableOf(rs));
      const remove = Math.min(cleanup, unhealthy);
      target.set(rs, specOf(rs) - remove);
      cleanup -= remove;
    }
    const totalAvailable = availableOf(existingNew) + olds.reduce((s, rs) => s + Math.min(availableOf(rs), target.get(rs) ?? 0), 0);
    let budget = totalAvailable - minAvailable;
    for (const rs of oldsActive) {
      if (budget <= 0) break;
      const current = target.get(rs) ?? 0;
      const remove = Math.min(budget, current);
      target.set(rs, current - remove);
      budget -= remove;
    }
  }

  const annotations = (rev: number): Record<string, string> => ({
    [REVISION_ANNOTATION]: String(rev),
    [DESIRED_ANNOTATION]: String(replicas),
    [MAX_ANNOTATION]: String(replicas + maxSurge),
  });
  const plan: DeploymentPlan = { scale: [], delete: [], status: {} };
  if (existingNew === undefined) {
    plan.create = newReplicaSet(deployment, hash, target.get('new') ?? 0, annotations(revision));
  } else {
    const want = target.get(existingNew) ?? 0;
    if (want !== specOf(existingNew) || revisionOf(existingNew) !== revision || existingNew.metadata?.annotations?.[DESIRED_ANNOTATION] !== String(replicas)) {
      plan.scale.push({ name: existingNew.metadata?.name ?? '', replicas: want, annotations: annotations(revision) });
    }
  }
  for (const rs of olds) {
    const want = target.get(rs) ?? 0;
    if (want !== specOf(rs)) plan.scale.push({ name: rs.metadata?.name ?? '', replicas: want, annotations: annotations(revisionOf(rs)) });
  }

  const limit = deployment.spec?.revisionHistoryLimit ?? 10;
  const idle = olds.filter((rs) => (target.get(rs) ?? 0) === 0 && (rs.status?.replicas ?? 0) === 0);
  plan.delete = idle.slice(0, Math.max(0, idle.length - limit)).map((rs) => rs.metadata?.name ?? '');

  plan.status = deploymentStatus(deployment, existingNew, olds, plan.create?.metadata?.name, now);
  const progressing = plan.status.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.status === 'True' && progressing.reason !== 'NewReplicaSetAvailable') {
    const deadline = (toMillis(progressing.lastUpdateTime) ?? now) + (deployment.spec?.progressDeadlineSeconds ?? 600) * 1000;
    plan.requeueAfterMs = Math.max(1000, deadline - now);
  }
  return plan;
}

function newReplicaSet(deployment: V1Deployment, hash: string, replicas: number, annotations: Record<string, string>): V1ReplicaSet {
  const template = structuredClone(deployment.spec?.template ?? {});
  template.metadata = { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), [TEMPLATE_HASH_LABEL]: hash } };
  const selector = structuredClone(deployment.spec?.selector ?? {});
  selector.matchLabels = { ...(selector.matchLabels ?? {}), [TEMPLATE_HASH_LABEL]: hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${deployment.metadata?.name}-${hash}`,
      namespace: deployment.metadata?.namespace ?? 'default',
      labels: { ...(template.metadata.labels ?? {}) },
      annotations,
      ownerReferences: [controllerRef({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: deployment.metadata })],
    },
    spec: { replicas, minReadySeconds: deployment.spec?.minReadySeconds ?? 0, selector, template },
  };
}

function deploymentStatus(
  deployment: V1Deployment,
  newRs: V1ReplicaSet | undefined,
  olds: readonly V1ReplicaSet[],
  createdName: string | undefined,
  now: number,
): V1DeploymentStatus {
  const replicas = deployment.spec?.replicas ?? 1;
  const all = newRs ? [newRs, ...olds] : [...olds];
  const sum = (f: (rs: V1ReplicaSet) => number | undefined) => all.reduce((s, rs) => s + (f(rs) ?? 0), 0);
  const status: V1DeploymentStatus = {
    observedGeneration: deployment.metadata?.generation ?? 0,
    replicas: sum((rs) => rs.status?.replicas),
    updatedReplicas: newRs?.status?.replicas ?? 0,
    readyReplicas: sum((rs) => rs.status?.readyReplicas),
    availableReplicas: sum((rs) => rs.status?.availableReplicas),
  };
  status.unavailableReplicas = Math.max(0, replicas - (status.availableReplicas ?? 0));
  if (deployment.status?.collisionCount !== undefined) status.collisionCount = deployment.status.collisionCount;

  const { maxUnavailable } = rollingParameters(deployment);
  const minAvailable = deployment.spec?.strategy?.type === 'Recreate' ? replicas : replicas - maxUnavailable;
  const previous = deployment.status?.conditions ?? [];
  const isAvailable = (status.availableReplicas ?? 0) >= minAvailable;
  const available = condition(previous, now, 'Available', isAvailable, isAvailable ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
    isAvailable ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.');

  const rsName = createdName ?? newRs?.metadata?.name ?? '';
  const complete =
    newRs !== undefined &&
    status.updatedReplicas === replicas &&
    status.replicas === replicas &&
    status.availableReplicas === replicas &&
    (newRs.status?.observedGeneration ?? 0) >= (newRs.metadata?.generation ?? 0);
  const before = previous.find((c) => c.type === 'Progressing');
  const countsChanged =
    deployment.status?.replicas !== status.replicas ||
    deployment.status?.updatedReplicas !== status.updatedReplicas ||
    deployment.status?.availableReplicas !== status.availableReplicas ||
    deployment.status?.readyReplicas !== status.readyReplicas;
  let progressing: V1DeploymentCondition;
  if (deployment.spec?.paused) {
    progressing = condition(previous, now, 'Progressing', 'Unknown', 'DeploymentPaused', 'Deployment is paused');
  } else if (complete) {
    progressing = condition(previous, now, 'Progressing', true, 'NewReplicaSetAvailable', `ReplicaSet "${rsName}" has successfully progressed.`);
  } else if (createdName !== undefined) {
    progressing = condition(previous, now, 'Progressing', true, 'NewReplicaSetCreated', `Created new replica set "${rsName}"`, true);
  } else {
    const deadlineSeconds = deployment.spec?.progressDeadlineSeconds ?? 600;
    const lastProgress = toMillis(before?.lastUpdateTime) ?? now;
    if (!countsChanged && before?.reason !== 'NewReplicaSetAvailable' && now - lastProgress > deadlineSeconds * 1000) {
      progressing = condition(previous, now, 'Progressing', false, 'ProgressDeadlineExceeded', `ReplicaSet "${rsName}" has timed out progressing.`);
    } else {
      progressing = condition(previous, now, 'Progressing', true, 'ReplicaSetUpdated', `ReplicaSet "${rsName}" is progressing.`, countsChanged);
    }
  }
  status.conditions = [available, progressing];
  return status;
}

/**
 * A condition that keeps its lastTransitionTime while its status holds, and its lastUpdateTime
 * while nothing about it changed (or `touch` says progress was made).
 */
function condition(
  previous: readonly V1DeploymentCondition[],
  now: number,
  type: string,
  value: boolean | 'Unknown',
  reason: string,
  message: string,
  touch = false,
): V1DeploymentCondition {
  const status = value === 'Unknown' ? 'Unknown' : value ? 'True' : 'False';
  const before = previous.find((c) => c.type === type);
  const same = before?.status === status;
  const unchanged = same && before?.reason === reason && before?.message === message && !touch;
  const keep = (t: Date | undefined) => (t === undefined ? new Date(now) : new Date(toMillis(t) ?? now));
  return {
    type,
    status,
    reason,
    message,
    lastUpdateTime: unchanged ? keep(before?.lastUpdateTime) : new Date(now),
    lastTransitionTime: same ? keep(before?.lastTransitionTime) : new Date(now),
  };
}
