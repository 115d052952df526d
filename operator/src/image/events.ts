// Which Events a NixImage's status change deserves. Pure: the status before the write and after it
// decide, so a resync that changes nothing says nothing, and neither does a restarted operator
// (its cache holds the status the previous one wrote).
import { getCondition, isConditionTrue } from '../api/conditions.ts';
import type { NixImageStatus } from '../api/types.ts';
import type { StatusEvent } from '../kube/events.ts';

export function imageEvents(before: NixImageStatus | undefined, after: NixImageStatus): StatusEvent[] {
  const events: StatusEvent[] = [];
  const was = before?.conditions;
  const now = after.conditions;
  // A new build Job is a new build even where the conditions read the same (a spec change mid-build).
  const sameJob = before?.jobName === after.jobName;

  if (isConditionTrue(now, 'Conflict') && !isConditionTrue(was, 'Conflict')) {
    events.push({ type: 'Warning', reason: 'Conflict', message: getCondition(now, 'Conflict')?.message ?? '' });
  }
  if (isConditionTrue(now, 'Building') && !(isConditionTrue(was, 'Building') && sameJob)) {
    events.push({ type: 'Normal', reason: 'BuildStarted', message: `build Job ${after.jobName} started` });
  }
  const ready = getCondition(now, 'Ready');
  if (ready?.status === 'False' && ready.reason === 'DigestUnverified' && !(getCondition(was, 'Ready')?.reason === 'DigestUnverified' && sameJob)) {
    events.push({ type: 'Warning', reason: 'DigestUnverified', message: ready.message ?? '' });
  }
  // lastBuildTime and digest are written only when a build's push is confirmed: either moving is a new push.
  if (ready?.status === 'True' && after.digest && (!isConditionTrue(was, 'Ready') || before?.digest !== after.digest || before?.lastBuildTime !== after.lastBuildTime)) {
    events.push({ type: 'Normal', reason: 'Pushed', message: `built and pushed ${after.digest}: pull ${after.image}` });
  }
  const failed = getCondition(now, 'Failed');
  if (failed?.status === 'True' && !(isConditionTrue(was, 'Failed') && getCondition(was, 'Failed')?.reason === failed.reason && sameJob)) {
    events.push({ type: 'Warning', reason: failed.reason ?? 'BuildFailed', message: failed.message ?? '' });
  }
  return events;
}
