// The status of a NixeryInstance from what was observed: pure, so every rule is a unit test.
// Ready is honest: ready replicas AND a registry that answers /v2/.
import type { V1DaemonSet, V1Deployment, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { removeCondition, setCondition } from '../api/conditions.ts';
import type { Condition, InstanceStorageStatus, NixeryInstance, NixeryInstanceStatus } from '../api/types.ts';
import { INSTANCE_NAMESPACE_LABEL } from '../kube/labels.ts';
import { instanceEndpoint } from './desired.ts';
import type { GateRefusals } from './gates.ts';
import { caBundleConfigMapName, isTlsProblem, tlsCondition, type TlsObservation } from './tls.ts';

export interface InstanceObservation {
  deployment?: V1Deployment;
  persistentVolumeClaim?: V1PersistentVolumeClaim;
  /** Set when the spec names a credentials Secret that does not exist. */
  missingSecret?: string;
  /** With spec.tls: the serving certificate, or why there is none yet. */
  tls?: TlsObservation;
  /** Whether GET /v2/ on the Service answered 200; undefined when not tried (no ready replica). */
  registryAnswers?: boolean;
  registryError?: string;
  /** An object the instance would write exists and is not its own: nothing after it was applied. */
  conflict?: { kind: string; name: string; namespace?: string; why: string };
  /** What the operator's privilege gates refused (gates.ts). */
  refusals?: GateRefusals;
  /** With spec.nodeLocal allowed: its DaemonSet, once there. */
  nodeLocal?: V1DaemonSet;
  /** With spec.nodeConfig allowed: its DaemonSet in the node-config namespace, once there (none until the Service has a ClusterIP). */
  nodeConfig?: V1DaemonSet;
  /** What the registry said at /storage-status; unset when it was not asked or did not answer (the status keeps what it had). */
  storage?: InstanceStorageStatus;
}

export function computeInstanceStatus(instance: NixeryInstance, observed: InstanceObservation, now: string): NixeryInstanceStatus {
  const generation = instance.metadata.generation ?? 0;
  const readyReplicas = observed.deployment?.status?.readyReplicas ?? 0;
  const deploymentCurrent = (observed.deployment?.status?.observedGeneration ?? -1) >= (observed.deployment?.metadata?.generation ?? 0);
  const updated = observed.deployment?.status?.updatedReplicas ?? 0;
  const desiredReplicas = instance.spec.replicas;
  const stalled = observed.deployment?.status?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded');

  let degraded: Omit<Condition, 'observedGeneration'> = { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' };
  const tls = observed.tls;
  const conflict = observed.conflict;
  if (conflict) {
    // The namespace only where it is not the instance's (pull Secrets); none for cluster scope.
    const where = conflict.namespace && conflict.namespace !== instance.metadata.namespace ? `${conflict.namespace}/` : '';
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'Conflict',
      message: `${conflict.kind} ${where}${conflict.name} exists and is not this NixeryInstance's (${conflict.why}); it is left untouched until it is deleted or given to this instance`,
    };
  } else if (observed.refusals?.image) {
    degraded = { type: 'Degraded', status: 'True', reason: 'ImageNotAllowed', message: observed.refusals.image };
  } else if (observed.missingSecret) {
    degraded = { type: 'Degraded', status: 'True', reason: 'SecretNotFound', message: `Secret ${observed.missingSecret} does not exist` };
  } else if (tls && !tls.ready && isTlsProblem(tls.reason)) {
    degraded = { type: 'Degraded', status: 'True', reason: tls.reason, message: tls.message };
  } else if (observed.persistentVolumeClaim && observed.persistentVolumeClaim.status?.phase !== 'Bound') {
    degraded = {
      type: 'Degraded',
      status: 'True',
      reason: 'VolumeNotBound',
      message: `PersistentVolumeClaim ${observed.persistentVolumeClaim.metadata?.name} is ${observed.persistentVolumeClaim.status?.phase ?? 'Pending'}`,
    };
  } else if (stalled) {
    degraded = { type: 'Degraded', status: 'True', reason: 'DeploymentStalled', message: stalled.message ?? 'the registry Deployment does not progress' };
  } else if (readyReplicas > 0 && observed.registryAnswers === false) {
    degraded = { type: 'Degraded', status: 'True', reason: 'RegistryNotAnswering', message: observed.registryError ?? 'GET /v2/ failed' };
  }

  const tlsWaiting = tls && !tls.ready ? tls : undefined;
  const ready = readyReplicas > 0 && observed.registryAnswers === true && !tlsWaiting && !conflict && !observed.refusals?.image;
  const readyCondition: Omit<Condition, 'observedGeneration'> = ready
    ? { type: 'Ready', status: 'True', reason: 'RegistryAnswering', message: `the registry answers at ${tls ? 'https://' : ''}${instanceEndpoint(instance)}` }
    : degraded.status === 'True'
      ? { type: 'Ready', status: 'False', reason: degraded.reason!, message: degraded.message! }
      : tlsWaiting
        ? { type: 'Ready', status: 'False', reason: tlsWaiting.reason, message: tlsWaiting.message }
        : {
            type: 'Ready',
            status: 'False',
            reason: readyReplicas > 0 ? 'WaitingForRegistry' : 'WaitingForPods',
            message: `${readyReplicas} of ${desiredReplicas} registry pods ready`,
          };
  const rolledOut = deploymentCurrent && updated >= desiredReplicas && readyReplicas >= desiredReplicas;
  const progressing: Omit<Condition, 'observedGeneration'> = rolledOut
    ? { type: 'Progressing', status: 'False', reason: 'RolledOut', message: 'every registry pod runs the current spec' }
    : { type: 'Progressing', status: 'True', reason: 'RollingOut', message: `${updated} of ${desiredReplicas} registry pods updated` };

  const nodeLocal = instance.spec.nodeLocal?.enabled ? nodeLocalCondition(observed) : undefined;
  // The registry serves without its node-local path, so Ready stays as it is; Degraded says
  // what is missing unless something worse already does.
  if (nodeLocal?.reason === 'NotAllowed' && degraded.status === 'False') degraded = { type: 'Degraded', status: 'True', reason: 'NotAllowed', message: nodeLocal.message! };
  const nodeConfig = instance.spec.nodeConfig?.enabled ? nodeConfigCondition(instance, observed) : undefined;
  if (nodeConfig?.reason === 'NotAllowed' && degraded.status === 'False') degraded = { type: 'Degraded', status: 'True', reason: 'NotAllowed', message: nodeConfig.message! };

  let conditions = instance.status?.conditions;
  for (const c of [readyCondition, progressing, degraded]) conditions = setCondition(conditions, { ...c, observedGeneration: generation }, now);
  conditions = tls ? setCondition(conditions, { ...tlsCondition(tls), observedGeneration: generation }, now) : removeCondition(conditions, 'TLSReady');
  conditions = nodeLocal ? setCondition(conditions, { ...nodeLocal, observedGeneration: generation }, now) : removeCondition(conditions, 'NodeLocalReady');
  conditions = nodeConfig ? setCondition(conditions, { ...nodeConfig, observedGeneration: generation }, now) : removeCondition(conditions, 'NodeConfigReady');
  return {
    observedGeneration: generation,
    endpoint: instanceEndpoint(instance),
    readyReplicas,
    ...(tls
      ? {
          tls: tls.ready
            ? { caBundle: tls.caBundle, caConfigMap: caBundleConfigMapName(instance.metadata.name), secretName: tls.secretName }
            : { secretName: tls.secretName },
        }
      : {}),
    ...(observed.storage ? { storage: observed.storage } : instance.status?.storage ? { storage: instance.status.storage } : {}),
    conditions: conditions ?? [],
  };
}

/** NodeLocalReady, for an instance with spec.nodeLocal.enabled: refused, or its DaemonSet's pods. */
function nodeLocalCondition(observed: InstanceObservation): Omit<Condition, 'observedGeneration'> {
  if (observed.refusals?.nodeLocal) return { type: 'NodeLocalReady', status: 'False', reason: 'NotAllowed', message: observed.refusals.nodeLocal };
  const scheduled = observed.nodeLocal?.status?.desiredNumberScheduled ?? 0;
  const ready = observed.nodeLocal?.status?.numberReady ?? 0;
  return scheduled > 0 && ready >= scheduled
    ? { type: 'NodeLocalReady', status: 'True', reason: 'Forwarding', message: `the node-local forwarder runs on ${ready} nodes` }
    : { type: 'NodeLocalReady', status: 'False', reason: 'WaitingForPods', message: `${ready} of ${scheduled} node-local forwarder pods ready` };
}

/**
 * NodeConfigReady, for an instance with spec.nodeConfig.enabled: refused, waiting for the Service's
 * ClusterIP, or its DaemonSet's pods — each ready once its node's files are written and the
 * runtime reads them (a node whose containerd reads no hosts directory keeps its pod unready).
 */
function nodeConfigCondition(instance: NixeryInstance, observed: InstanceObservation): Omit<Condition, 'observedGeneration'> {
  if (observed.refusals?.nodeConfig) return { type: 'NodeConfigReady', status: 'False', reason: 'NotAllowed', message: observed.refusals.nodeConfig };
  if (!observed.nodeConfig) return { type: 'NodeConfigReady', status: 'False', reason: 'WaitingForService', message: `waiting for Service ${instance.metadata.name}'s ClusterIP to point the nodes at` };
  const scheduled = observed.nodeConfig.status?.desiredNumberScheduled ?? 0;
  const ready = observed.nodeConfig.status?.numberReady ?? 0;
  if (scheduled > 0 && ready >= scheduled) return { type: 'NodeConfigReady', status: 'True', reason: 'Configured', message: `the container runtime is configured on ${ready} of ${scheduled} nodes` };
  // In the node-config namespace (the operator's), where the DaemonSet runs.
  const where = observed.nodeConfig.metadata?.namespace ?? instance.metadata.namespace;
  const logs = `kubectl logs -n ${where} -l app.kubernetes.io/name=nixery-node-config,app.kubernetes.io/instance=${instance.metadata.name},${INSTANCE_NAMESPACE_LABEL}=${instance.metadata.namespace}`;
  return {
    type: 'NodeConfigReady',
    status: 'False',
    reason: 'WaitingForNodes',
    message: `${ready} of ${scheduled} nodes configured; a node-config pod that stays unready logs why (${logs}): usually containerd without a config_path covering /etc/containerd/certs.d, or a file there that it did not write`,
  };
}
