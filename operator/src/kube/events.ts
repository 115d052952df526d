// core/v1 Events on the objects the operator acts on, so `kubectl describe` tells the story.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/operator-api';
import { FIELD_MANAGER } from '../api/types.ts';

export type EventClient = Pick<CoreV1Api, 'createNamespacedEvent'>;

/** An Event a status change deserves (image/events.ts, instance/events.ts decide which). */
export interface StatusEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export async function recordEvent(
  core: EventClient,
  object: KubernetesObject,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  onWrite: (kind: string) => void,
  log: Logger,
): Promise<void> {
  const namespace = object.metadata!.namespace!;
  const now = new Date();
  onWrite('Event');
  await core
    .createNamespacedEvent({
      namespace,
      fieldManager: FIELD_MANAGER,
      body: {
        metadata: { name: `${object.metadata!.name}.${randomBytes(8).toString('hex')}`, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name: object.metadata!.name,
          namespace,
          uid: object.metadata!.uid,
          resourceVersion: object.metadata!.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    })
    // Events are best effort: losing one must not fail a reconcile, but it is said.
    .catch((error: unknown) => {
      log.warn('event not recorded', { namespace, name: object.metadata!.name, reason, error: error instanceof Error ? error.message : String(error) });
    });
}
