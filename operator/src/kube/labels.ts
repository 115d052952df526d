// Kubernetes' recommended labels and owner references for everything the operator creates.
import type { V1OwnerReference } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../api/types.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

export function selectorLabels(instanceName: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'nixery', 'app.kubernetes.io/instance': instanceName };
}

export function commonLabels(instanceName: string, component: string): Record<string, string> {
  return {
    ...selectorLabels(instanceName),
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'nixery',
    [MANAGED_BY_LABEL]: FIELD_MANAGER,
  };
}

export function controllerReference(owner: { apiVersion: string; kind: string; metadata: { name: string; uid: string } }): V1OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}
