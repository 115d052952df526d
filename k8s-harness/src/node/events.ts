// core/v1 Events as the kubelet and controllers emit them (best effort: a failed write is dropped).
// A repeat of the same event within ten minutes bumps its count instead of adding another.
import { randomBytes } from 'node:crypto';
import type { CoreV1Event, KubernetesObject } from '@kubernetes/client-node';
import { mergePatch, type Kube } from './kube.ts';

export interface EventRecorder {
  emit(object: KubernetesObject, type: 'Normal' | 'Warning', reason: string, message: string, fieldPath?: string): void;
}

export function eventRecorder(kube: Kube, component: string, host: string): EventRecorder {
  const seen = new Map<string, { name: string; namespace: string; count: number; first: Date; at: number }>();
  return {
    emit(object, type, reason, message, fieldPath) {
      const namespace = object.metadata?.namespace || 'default';
      const key = `${object.metadata?.uid}|${fieldPath ?? ''}|${reason}|${message}`;
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const previous = seen.get(key);
      if (previous && now.getTime() - previous.at < 600_000) {
        previous.count++;
        previous.at = now.getTime();
        kube.core
          .patchNamespacedEvent({ name: previous.name, namespace: previous.namespace, body: { count: previous.count, lastTimestamp: now } }, mergePatch)
          .catch(() => {});
        return;
      }
      const name = `${object.metadata?.name ?? 'unknown'}.${randomBytes(8).toString('hex')}`;
      if (seen.size > 5000) seen.clear();
      seen.set(key, { name, namespace, count: 1, first: now, at: now.getTime() });
      const event: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name: object.metadata?.name,
          namespace: object.metadata?.namespace,
          uid: object.metadata?.uid,
          resourceVersion: object.metadata?.resourceVersion,
          ...(fieldPath ? { fieldPath } : {}),
        },
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component, host },
        reportingComponent: component,
        reportingInstance: host,
      };
      kube.core.createNamespacedEvent({ namespace, body: event }).catch(() => {});
    },
  };
}
