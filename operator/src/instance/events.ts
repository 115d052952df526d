// Which Events a NixeryInstance's status change deserves. Pure, as image/events.ts: the status
// before the write and after it decide, so a resync that changes nothing says nothing.
import { getCondition, isConditionTrue } from '../api/conditions.ts';
import type { NixeryInstanceStatus } from '../api/types.ts';
import type { StatusEvent } from '../kube/events.ts';

export function instanceEvents(before: NixeryInstanceStatus | undefined, after: NixeryInstanceStatus): StatusEvent[] {
  const events: StatusEvent[] = [];
  const was = before?.conditions;
  const now = after.conditions;

  // Degraded names the problem (Conflict, ImageNotAllowed, SecretNotFound, a TLS problem, …):
  // one Warning when it appears or turns into another.
  const degraded = getCondition(now, 'Degraded');
  if (degraded?.status === 'True') {
    const previous = getCondition(was, 'Degraded');
    if (previous?.status !== 'True' || previous.reason !== degraded.reason) {
      events.push({ type: 'Warning', reason: degraded.reason ?? 'Degraded', message: degraded.message ?? '' });
    }
  }
  const ready = getCondition(now, 'Ready');
  if (ready?.status === 'True' && !isConditionTrue(was, 'Ready')) {
    events.push({ type: 'Normal', reason: 'RegistryReady', message: ready.message ?? '' });
  }
  // A registry that stopped answering for a reason Degraded does not already tell.
  if (ready?.status === 'False' && isConditionTrue(was, 'Ready') && degraded?.status !== 'True') {
    events.push({ type: 'Warning', reason: 'RegistryNotReady', message: ready.message ?? '' });
  }
  // A spec change rolling out (not the first rollout of a new instance: RegistryReady tells that).
  if (before && isConditionTrue(now, 'Progressing') && !isConditionTrue(was, 'Progressing') && isConditionTrue(was, 'Ready')) {
    events.push({ type: 'Normal', reason: 'RollingOut', message: getCondition(now, 'Progressing')?.message ?? '' });
  }
  const tls = getCondition(now, 'TLSReady');
  if (tls?.status === 'True' && !isConditionTrue(was, 'TLSReady')) {
    events.push({ type: 'Normal', reason: 'CertificateReady', message: tls.message ?? '' });
  }
  return events;
}
