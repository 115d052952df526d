// The build Job of a NixImage: pure, (image, instance) in, Job out. Its name carries a hash of
// everything that decides the build, so a restarted operator finds the Job it started instead of
// starting another, and a spec change starts a new one.
import { createHash } from 'node:crypto';
import type { V1Job, V1ServiceAccount, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { buildArgs, CA_MOUNT, containerEnv, IDENTITY_TOKEN_MOUNT, type RegistrySettings } from '@nixery/registry/operator-api';
import { DEFAULT_LAYER_COMPRESSION, imageLayerCompression, layerCompressionSetting } from '../api/layer-compression.ts';
import { API_VERSION, type NixeryInstance, type NixImage } from '../api/types.ts';
import { commonLabels, controllerReference } from '../kube/labels.ts';
import { DEFAULT_NIX_RESOURCES, restrictedContainerSecurityContext, restrictedPodSecurityContext } from '../kube/pod-security.ts';
import { buildServiceAccountName, tokenAudience } from '../instance/auth.ts';
import { instanceEndpoint, packageSourceOf } from '../instance/desired.ts';
import { caBundleConfigMapName, tlsMode } from '../instance/tls.ts';

export const IMAGE_LABEL = 'nixery.dev/image';
export const BUILD_HASH_ANNOTATION = 'nixery.dev/build-hash';
const BUILD_STORAGE = '/var/lib/nixery-build';
/**
 * How long a build pod may run when the instance does not say (spec.build.activeDeadlineSeconds):
 * a build stuck on a network fetch is stopped and reported instead of holding its node for good.
 */
export const DEFAULT_BUILD_DEADLINE_SECONDS = 3600;
/** Successful build Jobs go away on their own; the operator keeps the last failed one (see reconciler). */
export const FINISHED_JOB_TTL_SECONDS = 600;
/**
 * How long a build pod's projected ServiceAccount token lives. The kubelet renews it at 80% of
 * that, and the push client reads the file anew for every token exchange.
 */
export const IDENTITY_TOKEN_SECONDS = 600;

export function repositoryName(image: NixImage): string {
  return image.spec.name ?? image.metadata.name;
}

/** The git ref to build from, if the effective source is git: the image's own, else the instance's. */
function effectiveSource(image: NixImage, instance: NixeryInstance) {
  const spec = image.spec.packageSource ?? instance.spec.packageSource;
  return { source: packageSourceOf(spec), ref: spec?.git?.ref };
}

export interface BuildInputs {
  /** For images with a rebuildInterval: which interval this build belongs to. */
  rebuildEpoch?: number;
}

export function buildHash(image: NixImage, instance: NixeryInstance, inputs: BuildInputs = {}): string {
  const { source, ref } = effectiveSource(image, instance);
  const identity = {
    packages: image.spec.packages,
    name: repositoryName(image),
    tag: image.spec.tag,
    config: image.spec.config ?? null,
    source: source ?? null,
    ref: ref ?? null,
    builder: instance.spec.image,
    target: instanceEndpoint(instance),
    nixTimeout: instance.spec.nixTimeout,
    rebuildEpoch: inputs.rebuildEpoch ?? null,
    // Only when set, so that the Jobs of images without platforms keep their names.
    ...(image.spec.platforms ? { platforms: image.spec.platforms } : {}),
    // Only when not the default, so that the Jobs of images built as before keep their names.
    ...(imageLayerCompression(image, instance) !== DEFAULT_LAYER_COMPRESSION ? { layerCompression: imageLayerCompression(image, instance) } : {}),
    // Only when on, so that the Jobs of instances without TLS keep their names.
    ...(tlsMode(instance) ? { scheme: 'https' } : {}),
  };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 10);
}

export function buildJobName(image: NixImage, hash: string): string {
  // Job names become pod name prefixes and label values: at most 63 characters.
  return `${image.metadata.name.slice(0, 63 - 'build-'.length - hash.length - 1)}-build-${hash}`;
}

export function desiredBuildJob(image: NixImage, instance: NixeryInstance, inputs: BuildInputs = {}): V1Job {
  const hash = buildHash(image, instance, inputs);
  const { source, ref } = effectiveSource(image, instance);
  const settings: RegistrySettings = {
    storage: { backend: 'filesystem', path: BUILD_STORAGE },
    nixTimeoutSeconds: instance.spec.nixTimeout,
    ...(instance.spec.popularityUrl ? { popularityUrl: instance.spec.popularityUrl } : {}),
    ...(source ? { source } : {}),
    ...layerCompressionSetting(imageLayerCompression(image, instance)),
  };
  const env = containerEnv(settings);
  const tls = tlsMode(instance) !== undefined;
  // No static secret: the build pushes as its own ServiceAccount, which the instance's policy
  // lets write this image's repository and nothing else.
  const volumes: V1Volume[] = [
    { name: 'build-storage', emptyDir: {} },
    {
      name: 'identity',
      projected: { sources: [{ serviceAccountToken: { audience: tokenAudience(instance), expirationSeconds: IDENTITY_TOKEN_SECONDS, path: 'token' } }] },
    },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'build-storage', mountPath: BUILD_STORAGE },
    { name: 'identity', mountPath: IDENTITY_TOKEN_MOUNT, readOnly: true },
  ];
  if (tls) {
    volumes.push({ name: 'registry-ca', configMap: { name: caBundleConfigMapName(instance.metadata.name) } });
    mounts.push({ name: 'registry-ca', mountPath: CA_MOUNT, readOnly: true });
  }
  const args = buildArgs({
    packages: image.spec.packages,
    // For a git source the tag option selects the ref to build from.
    tag: ref ?? 'latest',
    push: `${instanceEndpoint(instance)}/${repositoryName(image)}:${image.spec.tag}`,
    resultFile: '/dev/termination-log',
    ...(image.spec.config ? { config: image.spec.config } : {}),
    ...(image.spec.platforms ? { platforms: image.spec.platforms } : {}),
    ...(tls ? { pushScheme: 'https' as const, pushCaFile: `${CA_MOUNT}/ca.crt` } : {}),
    pushIdentityTokenFile: `${IDENTITY_TOKEN_MOUNT}/token`,
  });
  const labels = { ...commonLabels(instance.metadata.name, 'build'), [IMAGE_LABEL]: image.metadata.name };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: buildJobName(image, hash),
      namespace: image.metadata.namespace,
      labels,
      annotations: { [BUILD_HASH_ANNOTATION]: hash },
      ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixImage', metadata: image.metadata })],
    },
    spec: {
      backoffLimit: 1,
      activeDeadlineSeconds: instance.spec.build?.activeDeadlineSeconds ?? DEFAULT_BUILD_DEADLINE_SECONDS,
      ttlSecondsAfterFinished: FINISHED_JOB_TTL_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          serviceAccountName: buildServiceAccountName(image.metadata.name),
          // The build talks to the registry only, never to the API server.
          automountServiceAccountToken: false,
          securityContext: restrictedPodSecurityContext(),
          containers: [
            {
              name: 'build',
              image: instance.spec.image,
              args,
              env,
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'FallbackToLogsOnError',
              volumeMounts: mounts,
              resources: instance.spec.build?.resources ?? instance.spec.resources ?? DEFAULT_NIX_RESOURCES,
              // Writable root: Nix adds the build to the image's own /nix/store (kube/pod-security.ts).
              securityContext: restrictedContainerSecurityContext({ readOnlyRootFilesystem: false, ports: [] }),
            },
          ],
          volumes,
        },
      },
    },
  };
}

/** The ServiceAccount the build Jobs of a NixImage run as, owned by the NixImage. */
export function desiredBuildServiceAccount(image: NixImage, instance: NixeryInstance): V1ServiceAccount {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: buildServiceAccountName(image.metadata.name),
      namespace: image.metadata.namespace,
      labels: { ...commonLabels(instance.metadata.name, 'build'), [IMAGE_LABEL]: image.metadata.name },
      ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixImage', metadata: image.metadata })],
    },
    automountServiceAccountToken: false,
  };
}
