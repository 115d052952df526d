// A pod's reported status from what the kubelet knows about its containers: phase by the
// kubelet's rules, the four standard conditions, container statuses.
import type { V1ContainerState, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import { toMillis } from './owners.ts';

export interface ContainerRecord {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  restartCount: number;
  state: V1ContainerState;
  lastState?: V1ContainerState;
  ready: boolean;
  started: boolean;
}

export interface PodRecord {
  podIP?: string;
  hostIP: string;
  startTime?: Date;
  initContainers: ContainerRecord[];
  containers: ContainerRecord[];
  /** set once the pod is over for good (Succeeded/Failed), e.g. init failed under Never */
  terminalPhase?: 'Succeeded' | 'Failed';
  reason?: string;
  message?: string;
}

/** The kubelet's getPhase: init containers first, then counts of running, waiting and stopped containers. */
export function podPhase(restartPolicy: string | undefined, record: PodRecord): NonNullable<V1PodStatus['phase']> {
  if (record.terminalPhase) return record.terminalPhase;
  const policy = restartPolicy ?? 'Always';
  for (const init of record.initContainers) {
    const t = init.state.terminated;
    if (t && t.exitCode === 0) continue;
    const failed = (t && t.exitCode !== 0) || init.lastState?.terminated !== undefined;
    if (failed && policy === 'Never') return 'Failed';
    return 'Pending';
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of record.containers) {
    if (c.state.running) running++;
    else if (c.state.terminated) {
      stopped++;
      if (c.state.terminated.exitCode === 0) succeeded++;
    } else if (c.lastState?.terminated) stopped++;
    else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    return policy === 'OnFailure' ? 'Running' : 'Failed';
  }
  return 'Pending';
}

function toStatus(c: ContainerRecord): V1ContainerStatus {
  const status: V1ContainerStatus = {
    name: c.name,
    image: c.image,
    imageID: c.imageID,
    ready: c.ready,
    started: c.started,
    restartCount: c.restartCount,
    state: c.state,
    lastState: c.lastState ?? {},
  };
  if (c.containerID) status.containerID = c.containerID;
  return status;
}

/**
 * The status the kubelet reports. `previous` is the status reported before, so a condition keeps
 * its lastTransitionTime while its value holds.
 */
export function podStatus(pod: V1Pod, record: PodRecord, previous: V1PodStatus | undefined, now: number): V1PodStatus {
  const phase = podPhase(pod.spec?.restartPolicy, record);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const pendingInit = record.initContainers.filter((c) => !(c.state.terminated && c.state.terminated.exitCode === 0)).map((c) => c.name);
  const unready = record.containers.filter((c) => !c.ready).map((c) => c.name);
  const initialized = pendingInit.length === 0 || (terminal && pendingInit.length === 0);
  const gates = (pod.spec?.readinessGates ?? []).filter(
    (g) => !(pod.status?.conditions ?? []).some((c) => c.type === g.conditionType && c.status === 'True'),
  );

  const conditions: V1PodCondition[] = [];
  const set = (type: string, ok: boolean, reason?: string, message?: string) => {
    const before = previous?.conditions?.find((c) => c.type === type);
    const value = ok ? 'True' : 'False';
    const c: V1PodCondition = {
      type,
      status: value,
      lastTransitionTime: before?.status === value ? new Date(toMillis(before.lastTransitionTime) ?? now) : new Date(now),
    };
    if (reason) c.reason = reason;
    if (message) c.message = message;
    conditions.push(c);
  };
  set('PodReadyToStartContainers', record.podIP !== undefined);
  set('Initialized', initialized, initialized ? undefined : 'ContainersNotInitialized', initialized ? undefined : `containers with incomplete status: [${pendingInit.join(' ')}]`);
  if (terminal) {
    set('Ready', false, 'PodCompleted');
    set('ContainersReady', false, 'PodCompleted');
  } else {
    const containersReady = unready.length === 0 && initialized;
    const message = `containers with unready status: [${unready.join(' ')}]`;
    if (!containersReady) set('Ready', false, 'ContainersNotReady', message);
    else if (gates.length > 0) set('Ready', false, 'ReadinessGatesNotReady', `corresponding condition of pod readiness gate "${gates[0]!.conditionType}" does not exist.`);
    else set('Ready', true);
    set('ContainersReady', containersReady, containersReady ? undefined : 'ContainersNotReady', containersReady ? undefined : message);
  }
  set('PodScheduled', true);
  // Readiness-gate conditions belong to whoever set them; keep them as they are.
  for (const c of pod.status?.conditions ?? []) {
    if (!conditions.some((own) => own.type === c.type)) conditions.push(c);
  }

  const status: V1PodStatus = {
    phase,
    conditions,
    hostIP: record.hostIP,
    hostIPs: [{ ip: record.hostIP }],
    qosClass: previous?.qosClass ?? qosClass(pod),
    containerStatuses: record.containers.map(toStatus),
  };
  if (record.initContainers.length > 0) status.initContainerStatuses = record.initContainers.map(toStatus);
  if (record.podIP) {
    status.podIP = record.podIP;
    status.podIPs = [{ ip: record.podIP }];
  }
  if (record.startTime) status.startTime = record.startTime;
  if (record.reason) status.reason = record.reason;
  if (record.message) status.message = record.message;
  return status;
}

function qosClass(pod: V1Pod): string {
  const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  const requests = containers.some((c) => Object.keys(c.resources?.requests ?? {}).length > 0);
  const limits = containers.map((c) => c.resources?.limits ?? {});
  const guaranteed =
    containers.length > 0 &&
    containers.every((c) => c.resources?.limits?.cpu && c.resources?.limits?.memory) &&
    containers.every((c) => Object.entries(c.resources?.requests ?? {}).every(([k, v]) => c.resources?.limits?.[k] === v));
  if (guaranteed) return 'Guaranteed';
  if (requests || limits.some((l) => Object.keys(l).length > 0)) return 'Burstable';
  return 'BestEffort';
}
