// The security settings of every pod the operator creates: the Pod Security Standards'
// `restricted` profile, plus what more each workload allows. Pure, so the rules are unit tests and
// the test cluster's Pod Security admission checks the result.
import type { V1PodSecurityContext, V1ResourceRequirements, V1SecurityContext } from '@kubernetes/client-node';

/**
 * The user the project's registry image runs as and owns /nix with (scripts/build-images.sh,
 * nix/images/registry.nix): single-user Nix works as any uid that owns the store. Named
 * explicitly rather than left to the image, so that a pod never runs as root whatever the image
 * says, and a volume's fsGroup matches the user.
 */
export const REGISTRY_UID = 10000;
export const REGISTRY_GID = 10000;

/** Ports below this need NET_BIND_SERVICE, the one capability `restricted` lets a pod add. */
const FIRST_UNPRIVILEGED_PORT = 1024;

export function restrictedPodSecurityContext(): V1PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: REGISTRY_UID,
    runAsGroup: REGISTRY_GID,
    // Makes a freshly provisioned volume, owned by root, writable by the user.
    fsGroup: REGISTRY_GID,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export interface ContainerSecurityOptions {
  /**
   * False only where the program writes into the image: Nix adds what it builds to the image's
   * own /nix/store (a read-only root would need the whole store copied into a volume at every
   * start); the writable layer is then bounded by the ephemeral-storage limit.
   */
  readOnlyRootFilesystem: boolean;
  /** Ports the container listens on; one below 1024 keeps NET_BIND_SERVICE. */
  ports: number[];
}

export function restrictedContainerSecurityContext(options: ContainerSecurityOptions): V1SecurityContext {
  const lowPort = options.ports.some((p) => p < FIRST_UNPRIVILEGED_PORT);
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'], ...(lowPort ? { add: ['NET_BIND_SERVICE'] } : {}) },
    readOnlyRootFilesystem: options.readOnlyRootFilesystem,
  };
}

/**
 * Requests and limits for a container that runs Nix when the instance names none: a request the
 * scheduler can place, a memory limit that stops a runaway evaluation before the node suffers, and
 * an ephemeral-storage limit that bounds the Nix store and the writable layer (kubelet evicts the
 * pod above it). No CPU limit: throttling a build only makes it slower.
 */
export const DEFAULT_NIX_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '2Gi' },
  limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
};

/**
 * The node-config DaemonSet (spec.nodeConfig): it writes root-owned directories on the node
 * (hostPath), so it runs as uid 0 — which no Pod Security level below `privileged` admits with
 * hostPath — and is otherwise as tight as `restricted`: no capability at all (uid 0 owns those
 * directories, so writing into them takes no CAP_DAC_OVERRIDE), no privilege escalation, a
 * read-only root, seccomp RuntimeDefault.
 */
export function nodeConfigPodSecurityContext(): V1PodSecurityContext {
  return { runAsNonRoot: false, runAsUser: 0, runAsGroup: 0, seccompProfile: { type: 'RuntimeDefault' } };
}

export function nodeConfigContainerSecurityContext(): V1SecurityContext {
  return { allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true };
}

/** node-config writes a few small files every few seconds at most. */
export const DEFAULT_NODE_CONFIG_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '10m', memory: '48Mi' },
  limits: { memory: '128Mi', 'ephemeral-storage': '10Mi' },
};

/** The node-local forwarder copies bytes; it needs little. */
export const DEFAULT_FORWARDER_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { memory: '256Mi', 'ephemeral-storage': '100Mi' },
};
