// The status of a NixeryInstance from what was observed: pure, so every rule is a unit test.
// Ready is honest: ready replicas AND a registry that answers /v2/.
import type { V1Deployment, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { setCondition } from '../api/conditions.ts';
import type { Condition, NixeryInstance, NixeryInstanceStatus } from '../api/types.ts';
import { instanceEndpoint } from './desired.ts';

export interface InstanceObservation {
  deployment?: V1Deployment;
  persistentVolumeClaim?: V1PersistentVolumeClaim;
  /** Set when the spec names a credentials Secret that does not exist. */
  missingSecret?: string;
  /** Whether GET /v2/ on the Service answered 200; undefined when not tried (no ready replica). */
  registryAnswers?: boolean;
  registryError?: string;
}

export function computeInstanceStatus(instance: NixeryInstance, observed: InstanceObservation, now: string): NixeryInstanceStatus {
  const generation = instance.metadata.generation ?? 0;
  const readyReplicas = observed.deployment?.status?.readyReplicas ?? 0;
  const deploymentCurrent = (observed.deployment?.status?.observedGeneration ?? -1) >= (observed.deployment?.metadata?.generation ?? 0);
  const updated = observed.deployment?.status?.updatedReplicas ?? 0;
  const desiredReplicas = instance.spec.replicas;
  const stalled = observed.deployment?.status?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded');

  let degraded: Omit<Condition, 'observedGeneration'> = { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' };
  if (observed.missingSecret) {
    degraded = { type: 'Degraded', status: 'True', reason: 'SecretNotFound', message: `Secret ${observed.missingSecret} does not exist` };
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

  const ready = readyReplicas > 0 && observed.registryAnswers === true;
  const readyCondition: Omit<Condition, 'observedGeneration'> = ready
    ? { type: 'Ready', status: 'True', reason: 'RegistryAnswering', message: `the registry answers at ${instanceEndpoint(instance)}` }
    : {
        type: 'Ready',
        status: 'False',
        reason: degraded.status === 'True' ? degraded.reason! : readyReplicas > 0 ? 'WaitingForRegistry' : 'WaitingForPods',
        message: degraded.status === 'True' ? degraded.message! : `${readyReplicas} of ${desiredReplicas} registry pods ready`,
      };
  const rolledOut = deploymentCurrent && updated >= desiredReplicas && readyReplicas >= desiredReplicas;
  const progressing: Omit<Condition, 'observedGeneration'> = rolledOut
    ? { type: 'Progressing', status: 'False', reason: 'RolledOut', message: 'every registry pod runs the current spec' }
    : { type: 'Progressing', status: 'True', reason: 'RollingOut', message: `${updated} of ${desiredReplicas} registry pods updated` };

  let conditions = instance.status?.conditions;
  for (const c of [readyCondition, progressing, degraded]) conditions = setCondition(conditions, { ...c, observedGeneration: generation }, now);
  return {
    observedGeneration: generation,
    endpoint: instanceEndpoint(instance),
    readyReplicas,
    conditions: conditions ?? [],
  };
}
