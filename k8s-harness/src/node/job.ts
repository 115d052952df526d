// The Job controller's decisions: pods to start or stop, the Job's status and conditions, and
// when a finished Job's time to live is up.
import type { V1Job, V1JobCondition, V1JobStatus, V1Pod } from '@kubernetes/client-node';
import { backoffDelay, isActivePod, isPodReady, toMillis } from './owners.ts';

/**
 * Kubernetes waits 10 s, 20 s, 40 s … (capped at 6 min) before replacing a failed pod; this node
 * scales that down to 1 s, 2 s, 4 s … capped at 30 s so suites stay short.
 */
export const JOB_BACKOFF_BASE_MS = 1000;
export const JOB_BACKOFF_CAP_MS = 30_000;

export interface JobPlan {
  create: number;
  /** active pods to stop, by name */
  delete: string[];
  status: V1JobStatus;
  /** the Job's time to live after finishing has passed */
  deleteJob: boolean;
  requeueAfterMs?: number;
}

/** The labels a Job stamps on its pods (both the legacy and the `batch.kubernetes.io/` spelling). */
export function jobPodLabels(job: V1Job): Record<string, string> {
  const uid = job.metadata?.uid ?? '';
  const name = job.metadata?.name ?? '';
  return {
    'controller-uid': uid,
    'job-name': name,
    'batch.kubernetes.io/controller-uid': uid,
    'batch.kubernetes.io/job-name': name,
  };
}

export function finishedCondition(job: V1Job): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

function restartsOf(pod: V1Pod): number {
  const all = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  return all.reduce((sum, c) => sum + (c.restartCount ?? 0), 0);
}

function finishedAt(pod: V1Pod): number {
  const times = (pod.status?.containerStatuses ?? []).map((c) => toMillis(c.state?.terminated?.finishedAt) ?? 0);
  return Math.max(0, ...times, toMillis(pod.metadata?.creationTimestamp) ?? 0);
}

/** `owned`: the pods whose controller reference is this Job. */
export function planJob(job: V1Job, owned: readonly V1Pod[], now: number): JobPlan {
  const previous = job.status ?? {};
  const active = owned.filter(isActivePod);
  const succeededPods = owned.filter((p) => p.status?.phase === 'Succeeded');
  const failedPods = owned.filter((p) => p.status?.phase === 'Failed');
  // Terminated pods may be deleted by someone else; counts only ever grow, as with the real
  // controller's finalizer-based tracking.
  const succeeded = Math.max(previous.succeeded ?? 0, succeededPods.length);
  const failed = Math.max(previous.failed ?? 0, failedPods.length);
  const plan: JobPlan = { create: 0, delete: [], deleteJob: false, status: {} };

  const status: V1JobStatus = {
    active: active.length,
    ready: active.filter(isPodReady).length,
    succeeded,
    failed,
    conditions: [...(previous.conditions ?? [])],
  };
  if (previous.startTime) status.startTime = previous.startTime;
  if (previous.completionTime) status.completionTime = previous.completionTime;
  plan.status = status;

  const finished = finishedCondition(job);
  if (finished) {
    plan.delete = active.map((p) => p.metadata?.name ?? '');
    const ttl = job.spec?.ttlSecondsAfterFinished;
    if (ttl !== undefined && ttl !== null) {
      const doneAt = toMillis(previous.completionTime) ?? toMillis(finished.lastTransitionTime) ?? now;
      const expiry = doneAt + ttl * 1000;
      if (now >= expiry) plan.deleteJob = true;
      else plan.requeueAfterMs = expiry - now;
    }
    return plan;
  }

  if (job.spec?.suspend) {
    plan.delete = active.map((p) => p.metadata?.name ?? '');
    status.active = 0;
    setCondition(status, now, 'Suspended', 'True', 'JobSuspended', 'Job suspended');
    return plan;
  }
  if (status.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True')) {
    setCondition(status, now, 'Suspended', 'False', 'JobResumed', 'Job resumed');
  }
  if (!status.startTime) status.startTime = new Date(now);
  const startedAt = toMillis(status.startTime) ?? now;

  const parallelism = job.spec?.parallelism ?? 1;
  // Without completions and parallelism the API defaults completions to 1; with only parallelism
  // the Job is a work queue: done when some pod succeeded and none is left running.
  const completions = job.spec?.completions ?? (job.spec?.parallelism === undefined || job.spec?.parallelism === null ? 1 : undefined);
  const backoffLimit = job.spec?.backoffLimit ?? 6;
  const onFailure = job.spec?.template?.spec?.restartPolicy === 'OnFailure';
  const restarts = active.reduce((sum, p) => sum + restartsOf(p), 0);
  const pastBackoffLimit = failed > backoffLimit || (onFailure && (backoffLimit === 0 ? restarts > 0 : restarts >= backoffLimit));

  const deadline = job.spec?.activeDeadlineSeconds;
  const pastDeadline = deadline !== undefined && deadline !== null && now - startedAt >= deadline * 1000;

  const complete = completions !== undefined ? succeeded >= completions : succeeded > 0 && active.length === 0;
  if (complete) {
    plan.delete = active.map((p) => p.metadata?.name ?? '');
    status.active = 0;
    status.completionTime = new Date(now);
    setCondition(status, now, 'Complete', 'True', 'CompletionsReached', 'Reached expected number of succeeded pods');
    if (job.spec?.ttlSecondsAfterFinished !== undefined && job.spec?.ttlSecondsAfterFinished !== null) {
      plan.requeueAfterMs = job.spec.ttlSecondsAfterFinished * 1000;
    }
    return plan;
  }
  if (pastBackoffLimit || pastDeadline) {
    plan.delete = active.map((p) => p.metadata?.name ?? '');
    status.active = 0;
    if (pastBackoffLimit) setCondition(status, now, 'Failed', 'True', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
    else setCondition(status, now, 'Failed', 'True', 'DeadlineExceeded', 'Job was active longer than specified deadline');
    if (job.spec?.ttlSecondsAfterFinished !== undefined && job.spec?.ttlSecondsAfterFinished !== null) {
      plan.requeueAfterMs = job.spec.ttlSecondsAfterFinished * 1000;
    }
    return plan;
  }

  const wantActive = completions !== undefined ? Math.min(parallelism, completions - succeeded) : succeeded > 0 ? 0 : parallelism;
  if (active.length > wantActive) {
    plan.delete = active.slice(wantActive).map((p) => p.metadata?.name ?? '');
  } else if (active.length < wantActive) {
    const lastFailure = Math.max(0, ...failedPods.map(finishedAt));
    const readyAt = failed > 0 ? lastFailure + backoffDelay(failed, JOB_BACKOFF_BASE_MS, JOB_BACKOFF_CAP_MS) : 0;
    if (now >= readyAt) plan.create = wantActive - active.length;
    else plan.requeueAfterMs = readyAt - now;
  }
  if (deadline !== undefined && deadline !== null) {
    const left = startedAt + deadline * 1000 - now;
    plan.requeueAfterMs = Math.min(plan.requeueAfterMs ?? Infinity, left);
  }
  return plan;
}

function setCondition(status: V1JobStatus, now: number, type: string, value: 'True' | 'False', reason: string, message: string): void {
  const conditions = status.conditions ?? [];
  const existing = conditions.find((c) => c.type === type);
  const next: V1JobCondition = { type, status: value, reason, message, lastProbeTime: new Date(now), lastTransitionTime: new Date(now) };
  if (existing && existing.status === value) next.lastTransitionTime = existing.lastTransitionTime ?? new Date(now);
  status.conditions = [...conditions.filter((c) => c.type !== type), next];
}
