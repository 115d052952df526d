// Kubernetes' recommended labels and owner references for everything the operator creates.
import type { V1OwnerReference } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../api/types.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
/** Labels objects the instance cannot own (other namespaces, cluster scope) with its namespace too. */
export const INSTANCE_NAMESPACE_LABEL = 'nixery.dev/instance-namespace';
/**
 * The labels that say whose an object is when no owner reference can (kube/applier.ts): the
 * operator's mark and the instance's name and namespace. Not the component: that is content.
 */
export const IDENTITY_LABELS: readonly string[] = [MANAGED_BY_LABEL, INSTANCE_LABEL, INSTANCE_NAMESPACE_LABEL];

export function selectorLabels(instanceName: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'nixery', [INSTANCE_LABEL]: instanceName };
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
