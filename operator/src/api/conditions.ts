// Status conditions as the Kubernetes API conventions describe them: lastTransitionTime moves
// only when the status changes, so repeated reconciles do not rewrite it.
import type { Condition } from './types.ts';

export function setCondition(conditions: readonly Condition[] | undefined, next: Condition, now: string): Condition[] {
  const previous = conditions?.find((c) => c.type === next.type);
  const lastTransitionTime = previous && previous.status === next.status && previous.lastTransitionTime ? previous.lastTransitionTime : now;
  const updated: Condition = { ...next, lastTransitionTime };
  const others = (conditions ?? []).filter((c) => c.type !== next.type);
  return [...others, updated].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Whether the condition is there and True: missing, False and Unknown all count as not (meta.IsStatusConditionTrue). */
export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/** Without the condition of that type: for a condition that no longer applies (TLSReady once TLS is off). */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}
