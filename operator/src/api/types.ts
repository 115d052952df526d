// The nixery.dev/v1alpha1 API as the operator sees it. The CRDs in crds/ are the source of truth
// for validation and defaults; these types describe objects after the API server defaulted them.
import type { KubernetesObject, V1ObjectMeta } from '@kubernetes/client-node';
import type { ImageConfigOverrides, Platform, PlatformSummary } from '@nixery/registry/operator-api';

export const GROUP = 'nixery.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const FIELD_MANAGER = 'nixery-operator';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface PackageSourceSpec {
  channel?: string;
  git?: { url: string; ref?: string; trustedRefs?: string[] };
  path?: string;
}

/** An S3 or S3-compatible bucket; credentials from a Secret or the pods' workload identity. */
export interface S3StorageSpec {
  bucket: string;
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
  prefix?: string;
  redirect: 'presigned' | 'stream';
  presignedUrlExpirySeconds?: number;
  serverSideEncryption?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  /** Static keys, as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the registry pods. */
  credentialsSecret?: { name: string; accessKeyIdKey: string; secretAccessKeyKey: string };
  /** IRSA: the IAM role the instance's ServiceAccount is annotated with (eks.amazonaws.com/role-arn). */
  roleArn?: string;
}

/** How the registry compresses the layers it builds (NIXERY_LAYER_COMPRESSION). */
export type LayerCompression = 'gzip' | 'zstd';

export interface NixeryInstanceSpec {
  image: string;
  replicas: number;
  port: number;
  storage: {
    /** storageClassName and accessModes are immutable once set (CEL rules: a PVC's cannot change). */
    persistentVolume?: { size: string; storageClassName?: string; accessModes: string[] };
    gcs?: { bucket: string; credentialsSecret?: { name: string; key: string }; signedUrls: boolean };
    s3?: S3StorageSpec;
    /** The registry's garbage collection; unset fields keep the registry's defaults (README, Garbage collection). */
    gc?: { intervalSeconds?: number; graceSeconds?: number; retainPulledWithinSeconds?: number; maxImagesPerName?: number };
    /** NIXERY_STORAGE_QUOTA: a Kubernetes quantity (`50Gi`); above it on-demand images are evicted. */
    quota?: string;
  };
  packageSource?: PackageSourceSpec;
  resources?: Record<string, unknown>;
  /** The NixImages' build Jobs. */
  build?: {
    /** Seconds a build pod may run before Kubernetes stops it; desired-job.ts has the default. */
    activeDeadlineSeconds?: number;
    /** Compute resources of the build container; unset: `resources`, else desired-job.ts's defaults. */
    resources?: Record<string, unknown>;
  };
  nixTimeout: number;
  /**
   * Collection of the registry pod's own Nix store (NIXERY_NIX_GC_INTERVAL, NIXERY_NIX_GC_MAX_FREED);
   * unset or 0: off. Only for images whose programs live outside /nix/store or are rooted there.
   */
  nixStoreGc?: { intervalSeconds?: number; maxFreed?: string };
  /** The layers it builds, on demand and in NixImage build Jobs; the CRD defaults it to gzip. */
  layerCompression?: LayerCompression;
  popularityUrl?: string;
  service: { type: 'ClusterIP' | 'NodePort' | 'LoadBalancer'; port: number };
  nodeLocal?: { enabled: boolean; hostPort: number };
  /**
   * A DaemonSet that configures every node's container runtime (containerd's hosts directory,
   * CRI-O's registries.conf.d) to pull the Service's DNS names from its ClusterIP; needs the
   * operator's --allow-node-config. `containerdConfigPath` ("" for none) is checked for a
   * config_path covering /etc/containerd/certs.d.
   */
  nodeConfig?: { enabled: boolean; containerdConfigPath?: string; priorityClassName?: string };
  /** False: the registry serves NixImages' pushed tags only and builds nothing on demand. */
  onDemand: boolean;
  /** Attribute-path patterns (`*` a glob) of packages built on demand; NixImages are not subject to them. */
  packages?: { allow?: string[]; deny?: string[] };
  /** Bounds on on-demand builds, connections and disk; unset fields keep the registry's defaults. */
  limits?: {
    maxQueuedBuilds?: number;
    clientBuildsPerMinute?: number;
    clientAuthChecksPerMinute?: number;
    maxClosureSize?: string;
    headersTimeoutSeconds?: number;
    receiveTimeoutSeconds?: number;
    sendStallTimeoutSeconds?: number;
    keepAliveTimeoutSeconds?: number;
    maxConnections?: number;
    /** Bytes with a quantity suffix (`2Gi`) or a percentage (`5%`), as NIXERY_MIN_FREE_SPACE takes it. */
    minFreeSpace?: string;
    maxConcurrentBuilds?: number;
    tagFlushIntervalSeconds?: number;
    maxRecordedTags?: number;
  };
  /** HTTPS for the registry: exactly one of the three (a CEL rule of the CRD says so). */
  tls?: TlsSpec;
  /** Who may pull and push; unset behaves as `{anonymousPull: true}`. */
  auth?: AuthSpec;
}

export interface TlsSpec {
  /** A `kubernetes.io/tls` Secret of the instance's namespace, kept current by its owner. */
  secretName?: string;
  /** A cert-manager issuer: the operator makes a Certificate for the Service's names. */
  issuerRef?: { name: string; kind: 'Issuer' | 'ClusterIssuer'; group: string };
  /** The operator makes a CA and a serving certificate, and renews the certificate. */
  selfSigned?: Record<string, never>;
}

export type AccessAction = 'pull' | 'push' | 'delete';

/** One rule of the registry's access policy file (NIXERY_AUTH_POLICY_FILE), as the issue-19 contract defines it. */
export interface AccessRule {
  repositories: string[];
  // The CRD (a CEL rule) wants at least one subject in an instance's rules: non-empty users,
  // serviceAccounts or namespaces, or authenticated: true.
  users?: string[];
  /** `namespace/name`, with `*` globs. */
  serviceAccounts?: string[];
  namespaces?: string[];
  authenticated?: boolean;
  actions: AccessAction[];
  /**
   * These exact names may be pushed even where they are package lists too: the operator's grant
   * of a NixImage's repository (the NixImage shadows the on-demand image, as the push token did).
   * Not in the CRD: an instance's own rules cannot set it.
   */
  overOnDemandNames?: boolean;
}

export interface AuthSpec {
  anonymousPull: boolean;
  htpasswdSecretRef?: { name: string; key: string };
  /** Namespaces that get a `kubernetes.io/dockerconfigjson` Secret `<instance>-pull`. */
  pullSecretNamespaces?: string[];
  policy?: { rules: AccessRule[] };
}

export interface NixeryInstanceStatus {
  observedGeneration?: number;
  endpoint?: string;
  readyReplicas?: number;
  /** With spec.tls: what clients and nodes need to trust the registry. */
  tls?: {
    /** The CA certificate(s), PEM. */
    caBundle?: string;
    /** The ConfigMap of the instance's namespace holding the same bundle as `ca.crt`. */
    caConfigMap?: string;
    /** The Secret the registry serves its certificate from. */
    secretName?: string;
  };
  /** What the registry's storage holds and what its last garbage collection did (GET /storage-status). */
  storage?: InstanceStorageStatus;
  conditions?: Condition[];
}

export interface InstanceStorageStatus {
  /** Bytes stored (blobs and documents) as the last complete garbage collection counted them. */
  usedBytes?: number;
  /** When they were counted (RFC 3339). */
  measuredAt?: string;
  lastGarbageCollection?: {
    finishedAt: string;
    /** `Completed`, or `Incomplete` when something could not be read and nothing was deleted. */
    result: 'Completed' | 'Incomplete';
    objectsSwept: number;
    bytesFreed: number;
    imagesExpired: number;
  };
}

export interface NixeryInstance extends KubernetesObject {
  metadata: V1ObjectMeta & { name: string; namespace: string; uid: string };
  spec: NixeryInstanceSpec;
  status?: NixeryInstanceStatus;
}

export const NIXERY_INSTANCE = { group: GROUP, version: VERSION, plural: 'nixeryinstances', kind: 'NixeryInstance' } as const;
export const NIX_IMAGE = { group: GROUP, version: VERSION, plural: 'niximages', kind: 'NixImage' } as const;

export interface NixImageSpec {
  /** Immutable, as are `name` and `tag` (CEL rules): the finalizer deletes only the current tag. */
  instanceRef: { name: string };
  packages: string[];
  name?: string;
  tag: string;
  config?: ImageConfigOverrides;
  packageSource?: PackageSourceSpec;
  /** A duration of h, m and s parts, at least 1m (the CRD's pattern and CEL rule); see image/duration.ts. */
  rebuildInterval?: string;
  /** Several: an image per platform and an OCI image index of them under the tag; unset: the node's architecture. */
  platforms?: Platform[];
  /** Its build Job's layers; unset: the instance's spec.layerCompression. */
  layerCompression?: LayerCompression;
}

export interface NixImageStatus {
  observedGeneration?: number;
  image?: string;
  digest?: string;
  /** The SBOM's referrer manifest of `digest`: `GET /v2/<name>/referrers/<digest>` lists it. */
  sbomDigest?: string;
  /** With spec.platforms of several: `digest` is the image index, and these the images it names. */
  platforms?: PlatformSummary[];
  layers?: number;
  size?: number;
  jobName?: string;
  lastBuildTime?: string;
  conditions?: Condition[];
}

export interface NixImage extends KubernetesObject {
  metadata: V1ObjectMeta & { name: string; namespace: string; uid: string };
  spec: NixImageSpec;
  status?: NixImageStatus;
}
