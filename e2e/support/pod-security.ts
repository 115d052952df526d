// The suites run where Pod Security admission enforces the `restricted` profile, as a careful
// cluster's namespaces do: every pod the operator (or the chart) creates must pass it, and the
// suites' own test pods are written to pass it too.
import { kubectlOk } from './kube.ts';

export const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';

/** A namespace enforcing (and warning on) `restricted` at the cluster's latest policy version. */
export function restrictedNamespace(name: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      labels: {
        [ENFORCE_LABEL]: 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
        // Workloads (Deployments, Jobs, DaemonSets) are not rejected, only their pods: the warning
        // on the workload itself is what kubectl shows its author.
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/warn-version': 'latest',
      },
    },
  };
}

export async function createRestrictedNamespace(kubeconfig: string, name: string): Promise<void> {
  await kubectlOk(kubeconfig, ['create', '-f', '-'], JSON.stringify(restrictedNamespace(name)));
}

/** What `restricted` asks of a test pod running a Nix-built image: an unprivileged user, nothing more. */
export const RESTRICTED_POD_SECURITY = {
  runAsNonRoot: true,
  runAsUser: 65534,
  runAsGroup: 65534,
  seccompProfile: { type: 'RuntimeDefault' },
} as const;

export const RESTRICTED_CONTAINER_SECURITY = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
} as const;

interface PodLike {
  spec: { securityContext?: object; containers: ({ securityContext?: object } & Record<string, unknown>)[] } & Record<string, unknown>;
}

/** The pod with the restricted settings added to its spec and every container. */
export function restricted<T extends PodLike>(pod: T): T {
  return {
    ...pod,
    spec: {
      ...pod.spec,
      securityContext: { ...RESTRICTED_POD_SECURITY, ...pod.spec.securityContext },
      containers: pod.spec.containers.map((c) => ({ ...c, securityContext: { ...RESTRICTED_CONTAINER_SECURITY, ...c.securityContext } })),
    },
  };
}
