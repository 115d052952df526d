// What a NixeryInstance should look like in the cluster: pure, instance in, objects out.
import { createHash } from 'node:crypto';
import type {
  KubernetesObject,
  V1ConfigMap,
  V1DaemonSet,
  V1Deployment,
  V1EnvVar,
  V1PersistentVolumeClaim,
  V1PodDisruptionBudget,
  V1Service,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  CA_MOUNT,
  containerEnv,
  DEFAULT_CHANNEL_BASE_URL,
  forwardArgs,
  HTPASSWD_MOUNT,
  nodeConfigArgs,
  POLICY_MOUNT,
  PULL_USER_MOUNT,
  PUSH_TOKEN_MOUNT,
  serveArgs,
  TLS_MOUNT,
  TOKEN_KEY_MOUNT,
  type PackageSource,
  type RegistrySettings,
} from '@nixery/registry/operator-api';
import { instanceLayerCompression, layerCompressionSetting } from '../api/layer-compression.ts';
import { API_VERSION, type NixeryInstance, type NixeryInstanceSpec, type PackageSourceSpec } from '../api/types.ts';
import { commonLabels, controllerReference, selectorLabels } from '../kube/labels.ts';
import {
  DEFAULT_FORWARDER_RESOURCES,
  DEFAULT_NIX_RESOURCES,
  DEFAULT_NODE_CONFIG_RESOURCES,
  nodeConfigContainerSecurityContext,
  nodeConfigPodSecurityContext,
  restrictedContainerSecurityContext,
  restrictedPodSecurityContext,
} from '../kube/pod-security.ts';
import { anonymousPull, INSTANCE_NAMESPACE_LABEL, policyConfigMapName, POLICY_KEY, pullUserSecretName, tokenAudience, tokenKeySecretName, TOKEN_KEY_KEY, unownedLabels } from './auth.ts';
import { instanceEndpoint } from './endpoint.ts';
import { servingSecretName } from './tls.ts';

export { instanceEndpoint };

export const STORAGE_MOUNT = '/var/lib/nixery';
export const GCS_KEY_MOUNT = '/var/run/secrets/nixery/gcs';
export const PUSH_TOKEN_KEY = 'token';

/** The Secret holding the instance's push token; created once by the reconciler, never rewritten. */
export function pushTokenSecretName(instanceName: string): string {
  return `${instanceName}-push-token`;
}

export interface DesiredInstance {
  serviceAccount: V1ServiceAccount;
  persistentVolumeClaim?: V1PersistentVolumeClaim;
  deployment: V1Deployment;
  podDisruptionBudget: V1PodDisruptionBudget;
  service: V1Service;
  nodeLocal?: V1DaemonSet;
}

/** What desiredNodeConfig needs besides the instance. */
export interface NodeConfigFacts {
  /** The Service's ClusterIP, once it has one: where node-config points the nodes' runtimes. */
  clusterIP?: string;
  /**
   * Where the node agents run (--node-config-namespace, by default the operator's own): a
   * namespace allowing the `privileged` Pod Security level, not the instance's.
   */
  namespace: string;
  /** With TLS: the CA bundle, once the reconciler has it (copied beside the DaemonSet). */
  caBundle?: string;
}

/** spec.nodeConfig's objects, in the node-config namespace: neither has an owner reference. */
export interface DesiredNodeConfig {
  daemonSet: V1DaemonSet;
  /** With TLS and a CA bundle: the copy of `<instance>-ca-bundle` the DaemonSet mounts. */
  caConfigMap?: V1ConfigMap;
}

export function pvcName(instance: NixeryInstance): string {
  return `${instance.metadata.name}-storage`;
}


export function packageSourceOf(spec: PackageSourceSpec | undefined): PackageSource | undefined {
  if (spec?.channel) return { type: 'channel', channel: spec.channel, baseUrl: DEFAULT_CHANNEL_BASE_URL };
  if (spec?.git) return { type: 'git', url: spec.git.url, ...(spec.git.trustedRefs?.length ? { trustedRefs: spec.git.trustedRefs } : {}) };
  if (spec?.path) return { type: 'path', path: spec.path };
  return undefined;
}

/** The annotation through which EKS (IRSA) gives a ServiceAccount's pods an IAM role's credentials. */
export const IRSA_ROLE_ANNOTATION = 'eks.amazonaws.com/role-arn';

function storageSettings(spec: NixeryInstanceSpec): NonNullable<RegistrySettings['storage']> {
  const { gcs, s3 } = spec.storage;
  if (gcs) {
    return {
      backend: 'gcs',
      bucket: gcs.bucket,
      ...(gcs.credentialsSecret ? { credentialsFile: `${GCS_KEY_MOUNT}/${gcs.credentialsSecret.key}` } : {}),
      // signedUrls: the registry signs when its credentials can; false streams every blob through it.
      ...(gcs.signedUrls === false ? { redirect: 'stream' as const } : {}),
    };
  }
  if (s3) {
    return {
      backend: 's3',
      bucket: s3.bucket,
      ...(s3.region !== undefined ? { region: s3.region } : {}),
      ...(s3.endpoint !== undefined ? { endpoint: s3.endpoint } : {}),
      ...(s3.forcePathStyle ? { forcePathStyle: true } : {}),
      ...(s3.prefix !== undefined ? { prefix: s3.prefix } : {}),
      ...(s3.redirect === 'stream' ? { redirect: 'stream' as const } : {}),
      ...(s3.presignedUrlExpirySeconds !== undefined ? { presignedUrlExpirySeconds: s3.presignedUrlExpirySeconds } : {}),
      ...(s3.serverSideEncryption !== undefined ? { serverSideEncryption: s3.serverSideEncryption } : {}),
      ...(s3.kmsKeyId !== undefined ? { kmsKeyId: s3.kmsKeyId } : {}),
    };
  }
  return { backend: 'filesystem', path: STORAGE_MOUNT };
}

/** Static S3 keys from the instance's Secret, for the AWS SDK's environment provider; none with workload identity. */
function s3CredentialEnvironment(spec: NixeryInstanceSpec): V1EnvVar[] {
  const secret = spec.storage.s3?.credentialsSecret;
  if (!secret) return [];
  return [
    { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: secret.name, key: secret.accessKeyIdKey } } },
    { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: secret.name, key: secret.secretAccessKeyKey } } },
  ];
}

export function registryEnvironment(instance: NixeryInstance): V1EnvVar[] {
  const { spec } = instance;
  const settings: RegistrySettings = {
    port: spec.port,
    storage: storageSettings(spec),
    nixTimeoutSeconds: spec.nixTimeout,
    ...(spec.popularityUrl ? { popularityUrl: spec.popularityUrl } : {}),
    pushTokenFile: `${PUSH_TOKEN_MOUNT}/${PUSH_TOKEN_KEY}`,
    // Only what differs from the registry's defaults, so instances that leave them alone keep
    // the environment (and pods) they had.
    ...(spec.onDemand === false ? { onDemand: false } : {}),
    ...(spec.packages?.allow?.length ? { allowedPackages: spec.packages.allow } : {}),
    ...(spec.packages?.deny?.length ? { deniedPackages: spec.packages.deny } : {}),
    ...(spec.limits?.maxQueuedBuilds !== undefined ? { maxQueuedBuilds: spec.limits.maxQueuedBuilds } : {}),
    ...(spec.limits?.clientBuildsPerMinute !== undefined ? { clientBuildsPerMinute: spec.limits.clientBuildsPerMinute } : {}),
    ...(spec.limits?.clientAuthChecksPerMinute !== undefined ? { clientAuthChecksPerMinute: spec.limits.clientAuthChecksPerMinute } : {}),
    ...(spec.limits?.maxClosureSize !== undefined ? { maxClosureSize: spec.limits.maxClosureSize } : {}),
    ...(spec.limits ? { connections: connectionLimitsOf(spec.limits) } : {}),
    ...(spec.limits?.minFreeSpace !== undefined ? { minFreeSpace: spec.limits.minFreeSpace } : {}),
    ...(spec.limits?.maxConcurrentBuilds !== undefined ? { maxConcurrentBuilds: spec.limits.maxConcurrentBuilds } : {}),
    ...(spec.limits?.tagFlushIntervalSeconds !== undefined ? { tagFlushIntervalSeconds: spec.limits.tagFlushIntervalSeconds } : {}),
    ...(spec.limits?.maxRecordedTags !== undefined ? { maxRecordedTags: spec.limits.maxRecordedTags } : {}),
    ...(spec.storage.gc && Object.values(spec.storage.gc).some((v) => v !== undefined) ? { gc: gcSettingsOf(spec.storage.gc) } : {}),
    ...(spec.storage.quota !== undefined ? { storageQuota: spec.storage.quota } : {}),
    ...(spec.nixStoreGc && (spec.nixStoreGc.intervalSeconds || spec.nixStoreGc.maxFreed)
      ? { nixStoreGc: { ...(spec.nixStoreGc.intervalSeconds ? { intervalSeconds: spec.nixStoreGc.intervalSeconds } : {}), ...(spec.nixStoreGc.maxFreed ? { maxFreed: spec.nixStoreGc.maxFreed } : {}) } }
      : {}),
    ...layerCompressionSetting(instanceLayerCompression(instance)),
    ...(servingSecretName(instance) ? { tls: { certFile: `${TLS_MOUNT}/tls.crt`, keyFile: `${TLS_MOUNT}/tls.key` } } : {}),
    ...authSettings(instance),
  };
  const source = packageSourceOf(spec.packageSource);
  if (source) settings.source = source;
  return [...containerEnv(settings), ...s3CredentialEnvironment(spec)];
}

/**
 * Every instance's registry authenticates: build Jobs push with ServiceAccount tokens (hence the
 * audience, the policy and the token key), pull Secrets log in as the operator's pull user.
 */
function authSettings(instance: NixeryInstance): Pick<RegistrySettings, 'anonymousPull' | 'htpasswdFiles' | 'authPolicyFile' | 'tokenKeyFile' | 'k8sTokenAudience'> {
  const htpasswd = instance.spec.auth?.htpasswdSecretRef;
  return {
    anonymousPull: anonymousPull(instance),
    htpasswdFiles: [`${PULL_USER_MOUNT}/htpasswd`, ...(htpasswd ? [`${HTPASSWD_MOUNT}/htpasswd`] : [])],
    authPolicyFile: `${POLICY_MOUNT}/${POLICY_KEY}`,
    tokenKeyFile: `${TOKEN_KEY_MOUNT}/${TOKEN_KEY_KEY}`,
    k8sTokenAudience: tokenAudience(instance),
  };
}

/** The files of authentication and TLS, each from the object that holds it. */
function authTlsVolumes(instance: NixeryInstance): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const { name } = instance.metadata;
  const volumes: V1Volume[] = [
    { name: 'pull-user', secret: { secretName: pullUserSecretName(name), items: [{ key: 'htpasswd', path: 'htpasswd' }] } },
    { name: 'auth-policy', configMap: { name: policyConfigMapName(name) } },
    { name: 'token-key', secret: { secretName: tokenKeySecretName(name) } },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'pull-user', mountPath: PULL_USER_MOUNT, readOnly: true },
    { name: 'auth-policy', mountPath: POLICY_MOUNT, readOnly: true },
    { name: 'token-key', mountPath: TOKEN_KEY_MOUNT, readOnly: true },
  ];
  const htpasswd = instance.spec.auth?.htpasswdSecretRef;
  if (htpasswd) {
    volumes.push({ name: 'htpasswd', secret: { secretName: htpasswd.name, items: [{ key: htpasswd.key ?? 'htpasswd', path: 'htpasswd' }] } });
    mounts.push({ name: 'htpasswd', mountPath: HTPASSWD_MOUNT, readOnly: true });
  }
  const tlsSecret = servingSecretName(instance);
  if (tlsSecret) {
    // Only the pair: a serving Secret may hold more (ca.crt, a CA's key in someone's own Secret).
    volumes.push({ name: 'tls', secret: { secretName: tlsSecret, items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] } });
    mounts.push({ name: 'tls', mountPath: TLS_MOUNT, readOnly: true });
  }
  return { volumes, mounts };
}

/** The registry port's name: `https` with TLS, so that meshes and ingresses do not take it for plain HTTP. */
export function registryPortName(instance: NixeryInstance): string {
  return servingSecretName(instance) ? 'https' : 'http';
}

/** The connection limits a NixeryInstance sets; the others are left to the registry. */
function connectionLimitsOf(limits: NonNullable<NixeryInstanceSpec['limits']>): NonNullable<RegistrySettings['connections']> {
  const { headersTimeoutSeconds, receiveTimeoutSeconds, sendStallTimeoutSeconds, keepAliveTimeoutSeconds, maxConnections } = limits;
  return Object.fromEntries(
    Object.entries({ headersTimeoutSeconds, receiveTimeoutSeconds, sendStallTimeoutSeconds, keepAliveTimeoutSeconds, maxConnections }).filter(([, v]) => v !== undefined),
  );
}

/** The CRD's default volume, for a storage that names neither a volume nor a bucket (only gc settings, say). */
export const DEFAULT_PERSISTENT_VOLUME = { size: '20Gi', accessModes: ['ReadWriteOnce'] } as const;

/** The instance's volume: the one it names, else the default unless it keeps its storage in a bucket (GCS or S3). */
export function persistentVolumeOf(spec: NixeryInstanceSpec): NonNullable<NixeryInstanceSpec['storage']['persistentVolume']> | undefined {
  if (spec.storage.persistentVolume) return spec.storage.persistentVolume;
  return spec.storage.gcs || spec.storage.s3 ? undefined : { size: DEFAULT_PERSISTENT_VOLUME.size, accessModes: [...DEFAULT_PERSISTENT_VOLUME.accessModes] };
}

/** The garbage-collection settings a NixeryInstance sets; the others are left to the registry. */
function gcSettingsOf(gc: NonNullable<NixeryInstanceSpec['storage']['gc']>): NonNullable<RegistrySettings['gc']> {
  const { intervalSeconds, graceSeconds, retainPulledWithinSeconds, maxImagesPerName } = gc;
  return Object.fromEntries(Object.entries({ intervalSeconds, graceSeconds, retainPulledWithinSeconds, maxImagesPerName }).filter(([, v]) => v !== undefined));
}

export function desiredInstance(instance: NixeryInstance): DesiredInstance {
  const { name, namespace } = instance.metadata;
  const { spec } = instance;
  const owner = controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata });
  const meta = (objectName: string, component: string) => ({
    name: objectName,
    namespace,
    labels: commonLabels(name, component),
    ownerReferences: [owner],
  });

  // The administrator's token: the operator deletes tags with it (build Jobs push with their own
  // ServiceAccount tokens).
  const volumes: V1Volume[] = [{ name: 'push-token', secret: { secretName: pushTokenSecretName(name) } }];
  const mounts: V1VolumeMount[] = [{ name: 'push-token', mountPath: PUSH_TOKEN_MOUNT, readOnly: true }];
  let persistentVolumeClaim: V1PersistentVolumeClaim | undefined;
  const pv = persistentVolumeOf(spec);
  if (pv) {
    persistentVolumeClaim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta(pvcName(instance), 'storage'),
      spec: {
        accessModes: pv.accessModes,
        resources: { requests: { storage: pv.size } },
        ...(pv.storageClassName ? { storageClassName: pv.storageClassName } : {}),
      },
    };
    volumes.push({ name: 'storage', persistentVolumeClaim: { claimName: pvcName(instance) } });
    mounts.push({ name: 'storage', mountPath: STORAGE_MOUNT });
  }
  const credentials = spec.storage.gcs?.credentialsSecret;
  if (credentials) {
    volumes.push({ name: 'gcs-credentials', secret: { secretName: credentials.name } });
    mounts.push({ name: 'gcs-credentials', mountPath: GCS_KEY_MOUNT, readOnly: true });
  }
  const auth = authTlsVolumes(instance);
  volumes.push(...auth.volumes);
  mounts.push(...auth.mounts);
  const port = registryPortName(instance);
  const scheme = port === 'https' ? 'HTTPS' : 'HTTP';

  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, 'registry'),
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: selectorLabels(name) },
      // A persistent volume is written by one registry at a time: the old pod goes before the new one starts.
      // A volume only one pod may mount (ReadWriteOnce) cannot have the new pod beside the old one.
      strategy: pv && !pv.accessModes.includes('ReadWriteMany') ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: commonLabels(name, 'registry') },
        spec: {
          serviceAccountName: name,
          securityContext: restrictedPodSecurityContext(),
          // Soft: with one node (or one zone) the replicas still all run.
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels(name) } },
            { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorLabels(name) } },
          ],
          containers: [
            {
              name: 'registry',
              image: spec.image,
              // On the pod's own address: Services and probes reach it there, and registries of
              // pods that share a network (host networking, the e2e test cluster) do not collide.
              args: serveArgs('$(POD_IP)'),
              env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, ...registryEnvironment(instance)],
              ports: [{ name: port, containerPort: spec.port, protocol: 'TCP' }],
              // Not /v2/: it challenges anonymous clients with 401 when pulls need a login. The
              // kubelet does not verify the certificate of an HTTPS probe.
              readinessProbe: { httpGet: { path: '/healthz', port, scheme }, periodSeconds: 5, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: '/healthz', port, scheme }, periodSeconds: 10, failureThreshold: 6 },
              resources: spec.resources ?? DEFAULT_NIX_RESOURCES,
              securityContext: restrictedContainerSecurityContext({ readOnlyRootFilesystem: false, ports: [spec.port] }),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };

  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name, 'registry'),
    spec: {
      type: spec.service.type,
      selector: selectorLabels(name),
      ports: [{ name: port, port: spec.service.port, targetPort: port, protocol: 'TCP' }],
    },
  };

  const roleArn = spec.storage.s3?.roleArn;
  const serviceAccount: V1ServiceAccount = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { ...meta(name, 'registry'), ...(roleArn ? { annotations: { [IRSA_ROLE_ANNOTATION]: roleArn } } : {}) },
  };

  // A node drain takes one registry pod at a time. With one replica it lets that pod go, as no
  // budget would (a budget that blocked it would stall every drain); it is there already when the
  // replicas are raised.
  const podDisruptionBudget: V1PodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(name, 'registry'),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(name) } },
  };

  let nodeLocal: V1DaemonSet | undefined;
  if (spec.nodeLocal?.enabled) {
    const labels = { ...commonLabels(name, 'node-local'), 'app.kubernetes.io/name': 'nixery-node-local' };
    const selector = { 'app.kubernetes.io/name': 'nixery-node-local', 'app.kubernetes.io/instance': name };
    nodeLocal = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { ...meta(nodeLocalName(name), 'node-local'), labels },
      spec: {
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            // On the node's network, so the container runtime reaches it as localhost:<hostPort>.
            // The one thing `restricted` (and `baseline`) forbid here: everything else it asks holds.
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            // It forwards bytes; it never calls the API server.
            automountServiceAccountToken: false,
            securityContext: restrictedPodSecurityContext(),
            containers: [
              {
                name: 'forward',
                image: spec.image,
                args: forwardArgs(`127.0.0.1:${spec.nodeLocal.hostPort}`, instanceEndpoint(instance)),
                ports: [{ name: 'pull', containerPort: spec.nodeLocal.hostPort, hostPort: spec.nodeLocal.hostPort, protocol: 'TCP' }],
                resources: DEFAULT_FORWARDER_RESOURCES,
                securityContext: restrictedContainerSecurityContext({ readOnlyRootFilesystem: true, ports: [spec.nodeLocal.hostPort] }),
              },
            ],
          },
        },
      },
    };
  }

  return {
    serviceAccount,
    ...(persistentVolumeClaim ? { persistentVolumeClaim } : {}),
    deployment,
    podDisruptionBudget,
    service,
    ...(nodeLocal ? { nodeLocal } : {}),
  };
}

/** Where the node-config container sees the node's directories. */
export const NODE_CONFIG_HOST_ROOT = '/host';
export const CONTAINERD_CERTS_DIR = '/etc/containerd/certs.d';
export const CRIO_REGISTRIES_DIR = '/etc/containers/registries.conf.d';
export const CONTAINERS_CERTS_DIR = '/etc/containers/certs.d';
export const DEFAULT_CONTAINERD_CONFIG = '/etc/containerd/config.toml';
/** The readiness endpoint's port, on the pod's own address. */
export const NODE_CONFIG_READY_PORT = 8090;

/** The names pods pull by that a node cannot resolve, each `host:port`. */
export function nodeConfigHosts(instance: NixeryInstance): string[] {
  const { name, namespace } = instance.metadata;
  const port = instance.spec.service.port;
  return [`${name}.${namespace}.svc.cluster.local:${port}`, `${name}.${namespace}.svc:${port}`];
}

/**
 * spec.nodeConfig's DaemonSet (and with TLS the copy of the CA bundle it mounts) in the
 * node-config namespace, once the Service has a ClusterIP to point the nodes at; undefined before,
 * and when spec.nodeConfig is off.
 */
export function desiredNodeConfig(instance: NixeryInstance, facts: NodeConfigFacts): DesiredNodeConfig | undefined {
  if (!instance.spec.nodeConfig?.enabled || !facts.clusterIP || facts.clusterIP === 'None') return undefined;
  const daemonSet = nodeConfigDaemonSet(instance, facts.clusterIP, facts.namespace);
  const tls = servingSecretName(instance) !== undefined;
  return { daemonSet, ...(tls && facts.caBundle ? { caConfigMap: nodeConfigCaConfigMap(instance, facts.namespace, facts.caBundle) } : {}) };
}

/**
 * The CA bundle (`ca.crt`) where the node-config pods can mount it: a ConfigMap volume cannot
 * name another namespace's. Applied whenever the instance's own `<instance>-ca-bundle` is, with
 * the same content; the kubelet updates the mounted file and node-config re-reads it.
 */
export function nodeConfigCaConfigMap(instance: NixeryInstance, nodeConfigNamespace: string, caBundle: string): V1ConfigMap {
  const { name, namespace } = instance.metadata;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: nodeConfigCaName(namespace, name), namespace: nodeConfigNamespace, labels: unownedLabels(instance, 'node-config') },
    data: { 'ca.crt': caBundle },
  };
}

/** The DaemonSet's and its pods' labels: the identity labels (applier.ts) with the node-config name. */
function nodeConfigLabels(instance: NixeryInstance): Record<string, string> {
  return { ...unownedLabels(instance, 'node-config'), 'app.kubernetes.io/name': 'nixery-node-config' };
}

/** With the instance's namespace: same-named instances of two namespaces share the node-config namespace. */
export function nodeConfigSelector(instance: NixeryInstance): Record<string, string> {
  return { 'app.kubernetes.io/name': 'nixery-node-config', 'app.kubernetes.io/instance': instance.metadata.name, [INSTANCE_NAMESPACE_LABEL]: instance.metadata.namespace };
}

/**
 * The node-config DaemonSet: `nixery node-config` on every node (every taint tolerated), with
 * exactly these hostPaths — containerd's hosts directory and CRI-O's drop-in directory
 * (DirectoryOrCreate), containerd's config.toml read-only (File: unless the spec names none), and
 * with TLS /etc/containers/certs.d for CRI-O's CA — as root without capabilities. No hostNetwork,
 * no API token. A new ClusterIP is a new argument, so new pods write new files. It runs in the
 * node-config namespace (not the instance's, which may enforce `restricted`), so it has no owner
 * reference: the identity labels say whose it is, and the instance's finalizer deletes it.
 */
function nodeConfigDaemonSet(instance: NixeryInstance, clusterIP: string, nodeConfigNamespace: string): V1DaemonSet {
  const { name, namespace } = instance.metadata;
  const spec = instance.spec;
  const tls = servingSecretName(instance) !== undefined;
  const host = (path: string) => `${NODE_CONFIG_HOST_ROOT}${path}`;
  const containerdConfig = spec.nodeConfig?.containerdConfigPath ?? DEFAULT_CONTAINERD_CONFIG;
  const server = `${tls ? 'https' : 'http'}://${clusterIP.includes(':') ? `[${clusterIP}]` : clusterIP}:${spec.service.port}`;
  const volumes: V1Volume[] = [
    { name: 'containerd-certs', hostPath: { path: CONTAINERD_CERTS_DIR, type: 'DirectoryOrCreate' } },
    { name: 'crio-registries', hostPath: { path: CRIO_REGISTRIES_DIR, type: 'DirectoryOrCreate' } },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'containerd-certs', mountPath: host(CONTAINERD_CERTS_DIR) },
    { name: 'crio-registries', mountPath: host(CRIO_REGISTRIES_DIR) },
  ];
  if (containerdConfig) {
    volumes.push({ name: 'containerd-config', hostPath: { path: containerdConfig, type: 'File' } });
    mounts.push({ name: 'containerd-config', mountPath: host('/etc/containerd/config.toml'), readOnly: true });
  }
  if (tls) {
    volumes.push({ name: 'containers-certs', hostPath: { path: CONTAINERS_CERTS_DIR, type: 'DirectoryOrCreate' } });
    mounts.push({ name: 'containers-certs', mountPath: host(CONTAINERS_CERTS_DIR) });
    // Optional: the ConfigMap appears once the certificate is there; node-config waits for it.
    volumes.push({ name: 'ca', configMap: { name: nodeConfigCaName(namespace, name), optional: true } });
    mounts.push({ name: 'ca', mountPath: CA_MOUNT, readOnly: true });
  }
  const labels = nodeConfigLabels(instance);
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: nodeConfigName(namespace, name), namespace: nodeConfigNamespace, labels },
    spec: {
      selector: { matchLabels: nodeConfigSelector(instance) },
      // The old pod goes (removing its files) before the new one writes: never two on a node.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false,
          securityContext: nodeConfigPodSecurityContext(),
          // Every node pulls: configure every node, whatever its taints.
          tolerations: [{ operator: 'Exists' }],
          ...(spec.nodeConfig?.priorityClassName ? { priorityClassName: spec.nodeConfig.priorityClassName } : {}),
          containers: [
            {
              name: 'node-config',
              image: spec.image,
              args: nodeConfigArgs({
                instance: `${namespace}/${name}`,
                hosts: nodeConfigHosts(instance),
                server,
                ...(tls ? { caFile: `${CA_MOUNT}/ca.crt`, crioCertsDir: host(CONTAINERS_CERTS_DIR) } : {}),
                containerdDir: host(CONTAINERD_CERTS_DIR),
                containerdHostDir: CONTAINERD_CERTS_DIR,
                ...(containerdConfig ? { containerdConfig: host('/etc/containerd/config.toml') } : {}),
                crioDir: host(CRIO_REGISTRIES_DIR),
                readyListen: `$(POD_IP):${NODE_CONFIG_READY_PORT}`,
              }),
              env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
              ports: [{ name: 'ready', containerPort: NODE_CONFIG_READY_PORT, protocol: 'TCP' }],
              // Not ready while a file could not be written or containerd reads no hosts directory; the log says which.
              readinessProbe: { httpGet: { path: '/readyz', port: 'ready', scheme: 'HTTP' }, periodSeconds: 10, failureThreshold: 1 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'ready', scheme: 'HTTP' }, periodSeconds: 20, failureThreshold: 3 },
              resources: DEFAULT_NODE_CONFIG_RESOURCES,
              securityContext: nodeConfigContainerSecurityContext(),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}

/** In the order they should be applied: what others reference comes first. */
export function desiredObjects(desired: DesiredInstance): KubernetesObject[] {
  return [desired.serviceAccount, desired.persistentVolumeClaim, desired.service, desired.deployment, desired.podDisruptionBudget, desired.nodeLocal].filter(
    (o): o is NonNullable<typeof o> => o !== undefined,
  );
}

/** The node-local DaemonSet's name (also what is removed once spec.nodeLocal is off). */
export function nodeLocalName(instanceName: string): string {
  return `${instanceName}-node-local`;
}

/** A DNS label's (and so a pod name's useful) length. */
const MAX_NAME = 63;

/**
 * The node-config DaemonSet's name in the node-config namespace, shared by every instance:
 * `nixery-node-config-<namespace>-<name>-<hash>`, the readable part cut short so that the whole
 * stays within 63 characters. The hash (of `<namespace>/<name>`) keeps it unique where the
 * readable part alone is not: `team/a-web` and `team-a/web` read the same, and long names are cut.
 */
export function nodeConfigName(instanceNamespace: string, instanceName: string): string {
  const hash = createHash('sha256').update(`${instanceNamespace}/${instanceName}`).digest('hex').slice(0, 8);
  const readable = `nixery-node-config-${instanceNamespace}-${instanceName}`.slice(0, MAX_NAME - hash.length - 1).replace(/[-.]+$/, '');
  return `${readable}-${hash}`;
}

/** The copy of the CA bundle in the node-config namespace: the DaemonSet's name and `-ca`. */
export function nodeConfigCaName(instanceNamespace: string, instanceName: string): string {
  return `${nodeConfigName(instanceNamespace, instanceName)}-ca`;
}

/** The DaemonSet spec.nodeConfig made in the instance's own namespace before it moved (removed once seen). */
export function legacyNodeConfigName(instanceName: string): string {
  return `${instanceName}-node-config`;
}
