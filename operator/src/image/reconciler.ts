// Reconciles one NixImage: wait for its instance, run (or adopt) the build Job for the current
// spec, copy the builder's result into status, and remove the pushed tag when the NixImage goes.
import { isDeepStrictEqual } from 'node:util';
import {
  PatchStrategy,
  setHeaderOptions,
  type BatchV1Api,
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObject,
  type ObjectCache,
  type V1Job,
  type V1Service,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { deleteTag, type BuildSummary, type Logger, type TagReference } from '@nixery/registry/operator-api';
import { getCondition, isConditionTrue } from '../api/conditions.ts';
import { FIELD_MANAGER, NIX_IMAGE, type NixeryInstance, type NixImage } from '../api/types.ts';
import type { ReconcileResult } from '../controller/controller.ts';
import { statusOf } from '../kube/http-status.ts';
import { pullUserSecretName } from '../instance/auth.ts';
import { pushTokenSecretName, PUSH_TOKEN_KEY } from '../instance/desired.ts';
import { tlsMode, verificationName } from '../instance/tls.ts';
import { recordEvent, type EventClient } from '../kube/events.ts';
import { conflictingClaim } from './conflict.ts';
import { desiredBuildJob, desiredBuildServiceAccount, IMAGE_LABEL, repositoryName } from './desired-job.ts';
import { parseDuration } from './duration.ts';
import { imageEvents } from './events.ts';
import { verifyDigest, type DigestCheck, type DigestCheckRequest, type DigestVerifier } from './registry-check.ts';
import { computeImageStatus, jobState } from './status.ts';

export const TAG_FINALIZER = 'nixery.dev/remove-tag';

export interface ImageCaches {
  images: ObjectCache<NixImage>;
  instances: ObjectCache<NixeryInstance>;
  jobs: ObjectCache<V1Job>;
  services: ObjectCache<V1Service>;
  /** The operator's ServiceAccounts (the build ones among them). */
  serviceAccounts: ObjectCache<V1ServiceAccount>;
}

/** The API calls of a reconcile: manager.ts passes the real clients, tests fakes. */
export interface ImageClients {
  batch: Pick<BatchV1Api, 'createNamespacedJob' | 'readNamespacedJob' | 'patchNamespacedJob' | 'deleteNamespacedJob'>;
  core: Pick<CoreV1Api, 'listNamespacedPod' | 'readNamespacedSecret' | 'createNamespacedServiceAccount'> & EventClient;
  customObjects: Pick<CustomObjectsApi, 'patchNamespacedCustomObject' | 'patchNamespacedCustomObjectStatus'>;
}

/**
 * Removes a tag from the registry with a credential limited to its repository, got for the
 * instance's push token; a tag already gone is no error. With TLS, `ca` is what to trust.
 */
export type TagDeleter = (tag: TagReference, pushToken: string, tls?: { ca: string }) => Promise<void>;

export interface ImageReconcilerDeps {
  clients: ImageClients;
  caches: ImageCaches;
  log: Logger;
  onWrite: (kind: string) => void;
  deleteTag?: TagDeleter;
  /** Whether the registry serves a build's digest under its repository and tag. */
  verifyDigest?: DigestVerifier;
  now?: () => Date;
}

export class ImageReconciler {
  private readonly deps: ImageReconcilerDeps;
  private readonly batch: ImageClients['batch'];
  private readonly core: ImageClients['core'];
  private readonly custom: ImageClients['customObjects'];
  /** Unconfirmed digest checks in a row, by NixImage UID and Job: the backoff's exponent. */
  private readonly unverified = new Map<string, number>();

  constructor(deps: ImageReconcilerDeps) {
    this.deps = deps;
    this.batch = deps.clients.batch;
    this.core = deps.clients.core;
    this.custom = deps.clients.customObjects;
  }

  reconcile = async (key: string): Promise<ReconcileResult> => {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches } = this.deps;
    const image = caches.images.get(name, namespace);
    if (!image) return {};
    if (image.metadata.deletionTimestamp) return this.finalize(image);
    if (!image.metadata.finalizers?.includes(TAG_FINALIZER)) await this.addFinalizer(image);

    const now = (this.deps.now ?? (() => new Date()))();
    const instance = caches.instances.get(image.spec.instanceRef.name, namespace);
    const conflictWith = conflictingClaim(image, caches.images.list(namespace));
    const interval = image.spec.rebuildInterval ? parseDuration(image.spec.rebuildInterval) : undefined;
    const rebuildEpoch = interval ? Math.floor(now.getTime() / interval) : undefined;
    let requeueAfterMs = interval ? (rebuildEpoch! + 1) * interval - now.getTime() + 1000 : undefined;

    let jobName = image.status?.jobName ?? '';
    let job: V1Job | undefined;
    let summary: BuildSummary | undefined;
    let foreignJob = false;
    let verification: DigestCheck | undefined;
    if (instance && !conflictWith) {
      const desired = desiredBuildJob(image, instance, rebuildEpoch === undefined ? {} : { rebuildEpoch });
      jobName = desired.metadata!.name!;
      job = caches.jobs.get(jobName, namespace);
      const alreadyBuilt = image.status?.jobName === jobName && isConditionTrue(image.status.conditions, 'Ready');
      const instanceReady = isCurrentlyReady(instance);
      if (!job && !alreadyBuilt) {
        if (!instanceReady) {
          // The Job would only fail to push; look again soon.
          requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, 3000);
        } else {
          await this.ensureServiceAccount(image, instance);
          job = await this.createJob(image, desired);
        }
      }
      if (job && !isControlledBy(job, image.metadata.uid)) {
        // Whoever made a Job of this name, it was not this NixImage: nothing it says is believed.
        this.deps.log.warn('build Job not controlled by its NixImage: ignored', { namespace, name, job: jobName });
        foreignJob = true;
        job = undefined;
        requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, FOREIGN_JOB_REQUEUE_MS);
      }
      const state = jobState(job);
      if (state === 'succeeded' || state === 'failed') summary = await this.readSummary(namespace, job!);
      if (state === 'succeeded' && summary?.digest) {
        const key = `${image.metadata.uid}/${jobName}`;
        verification = await this.verify(image, instance, jobName, summary.digest);
        if (verification.confirmed) this.unverified.delete(key);
        else {
          // Not a build failure (the registry may be restarting): ask again, less often each time.
          const attempts = this.unverified.get(key) ?? 0;
          this.unverified.set(key, attempts + 1);
          requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, Math.min(VERIFY_BACKOFF_BASE_MS * 2 ** attempts, VERIFY_BACKOFF_MAX_MS));
        }
      }
      if (state === 'failed') await this.keepForLogs(job!);
      if (state !== 'none') await this.removeOlderJobs(image, jobName);
    }

    const status = computeImageStatus(
      image,
      { ...(instance ? { instance } : {}), ...(conflictWith ? { conflictWith } : {}), jobName, ...(foreignJob ? { foreignJob } : {}), ...(job ? { job } : {}), ...(summary ? { summary } : {}), ...(verification ? { verification } : {}) },
      now.toISOString(),
    );
    // Key order does not matter: the API server need not keep ours.
    if (!isDeepStrictEqual(status, image.status ?? {})) {
      await this.writeStatus(image, status);
      // After the write: a status that did not land is computed again next time, events with it.
      await this.announce(image, image.status, status);
    }
    return requeueAfterMs === undefined ? {} : { requeueAfterMs };
  };

  /** The build's identity, before the Job that runs as it; made once, it has nothing to update. */
  private async ensureServiceAccount(image: NixImage, instance: NixeryInstance): Promise<void> {
    const desired = desiredBuildServiceAccount(image, instance);
    if (this.deps.caches.serviceAccounts.get(desired.metadata!.name!, image.metadata.namespace)) return;
    this.deps.onWrite('ServiceAccount');
    try {
      await this.core.createNamespacedServiceAccount({ namespace: image.metadata.namespace, body: desired, fieldManager: FIELD_MANAGER });
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }

  private async createJob(image: NixImage, desired: V1Job): Promise<V1Job | undefined> {
    const namespace = image.metadata.namespace;
    try {
      this.deps.onWrite('Job');
      return await this.batch.createNamespacedJob({ namespace, body: desired, fieldManager: FIELD_MANAGER });
    } catch (error) {
      // Created by a previous run of the operator whose cache had not seen it yet: adopt it.
      if (statusOf(error) === 409) return this.batch.readNamespacedJob({ name: desired.metadata!.name!, namespace });
      throw error;
    }
  }

  /**
   * The builder's summary from the termination message of the Job's newest finished pod. Only a pod
   * the Job controls counts: anyone who may create pods here can label one `job-name=<job>`.
   */
  private async readSummary(namespace: string, job: V1Job): Promise<BuildSummary | undefined> {
    const jobName = job.metadata!.name!;
    const jobUid = job.metadata?.uid;
    const pods = await this.core.listNamespacedPod({ namespace, labelSelector: `job-name=${jobName}` });
    const own = pods.items.filter((pod) => {
      if (jobUid && isControlledBy(pod, jobUid)) return true;
      this.deps.log.warn('pod labelled as a build pod but not controlled by the build Job: ignored', { namespace, pod: pod.metadata?.name, job: jobName });
      return false;
    });
    const finished = own
      .map((pod) => ({ pod, terminated: pod.status?.containerStatuses?.find((c) => c.name === 'build')?.state?.terminated }))
      .filter((p) => p.terminated?.message)
      .sort((a, b) => new Date(b.terminated!.finishedAt ?? 0).getTime() - new Date(a.terminated!.finishedAt ?? 0).getTime());
    const message = finished[0]?.terminated?.message;
    if (!message) return undefined;
    try {
      return JSON.parse(message) as BuildSummary;
    } catch {
      // FallbackToLogsOnError put the log tail there: the builder died before writing its summary.
      return { error: { outcome: 'error', message: message.slice(-1000) } };
    }
  }

  /**
   * Asks the instance's registry for the digest, as the instance's probe reaches it: through the
   * Service's ClusterIP, over HTTPS trusting status.tls.caBundle and checking the Service's name.
   * A digest this very Job already had confirmed (status Ready with it) is not asked about again.
   */
  private async verify(image: NixImage, instance: NixeryInstance, jobName: string, digest: string): Promise<DigestCheck> {
    const previous = image.status;
    if (previous?.digest === digest && previous.jobName === jobName && isConditionTrue(previous.conditions, 'Ready')) return { confirmed: true };
    const { namespace } = image.metadata;
    const clusterIP = this.deps.caches.services.get(instance.metadata.name, namespace)?.spec?.clusterIP;
    if (!clusterIP || clusterIP === 'None') return { confirmed: false, message: `Service ${instance.metadata.name} has no ClusterIP to reach the registry by` };
    const port = instance.spec.service.port;
    const ca = instance.status?.tls?.caBundle;
    if (tlsMode(instance) && !ca) return { confirmed: false, message: `NixeryInstance ${instance.metadata.name} has no CA bundle in status.tls to trust its registry by` };
    const target: Pick<DigestCheckRequest, 'baseUrl' | 'ca' | 'servername'> = tlsMode(instance)
      ? { baseUrl: `https://${clusterIP}:${port}`, ca: ca!, servername: verificationName(instance) }
      : { baseUrl: `http://${clusterIP}:${port}` };
    return (this.deps.verifyDigest ?? verifyDigest)({
      ...target,
      repository: repositoryName(image),
      tag: image.spec.tag,
      digest,
      credentials: () => this.pullUser(instance),
    });
  }

  /** The operator's pull user of the instance (instance/auth.ts), for registries that want a login. */
  private async pullUser(instance: NixeryInstance): Promise<{ username: string; password: string } | undefined> {
    let secret;
    try {
      secret = await this.core.readNamespacedSecret({ name: pullUserSecretName(instance.metadata.name), namespace: instance.metadata.namespace });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
    const field = (key: string) => (secret.data?.[key] ? Buffer.from(secret.data[key], 'base64').toString('utf8') : undefined);
    const username = field('username');
    const password = field('password');
    return username && password ? { username, password } : undefined;
  }

  /** The last failed build stays for its logs: no TTL for it. */
  private async keepForLogs(job: V1Job): Promise<void> {
    if (job.spec?.ttlSecondsAfterFinished === undefined || job.spec.ttlSecondsAfterFinished === null) return;
    this.deps.onWrite('Job');
    await this.batch.patchNamespacedJob(
      { name: job.metadata!.name!, namespace: job.metadata!.namespace!, body: { spec: { ttlSecondsAfterFinished: null } }, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Earlier builds of this image (older specs, kept failures) go once a newer one exists. */
  private async removeOlderJobs(image: NixImage, current: string): Promise<void> {
    for (const job of this.deps.caches.jobs.list(image.metadata.namespace)) {
      if (job.metadata?.labels?.[IMAGE_LABEL] !== image.metadata.name || job.metadata.name === current) continue;
      if (jobState(job) === 'running') continue;
      this.deps.onWrite('Job');
      await this.batch
        .deleteNamespacedJob({ name: job.metadata.name!, namespace: image.metadata.namespace, propagationPolicy: 'Background' })
        .catch((error: unknown) => {
          if (statusOf(error) !== 404) throw error;
        });
    }
  }

  private async writeStatus(image: NixImage, status: NonNullable<NixImage['status']>): Promise<void> {
    this.deps.onWrite('NixImage/status');
    await this.custom.patchNamespacedCustomObjectStatus(
      { ...NIX_IMAGE_PATH, namespace: image.metadata.namespace, name: image.metadata.name, body: { status }, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  private async announce(image: NixImage, before: NixImage['status'], after: NonNullable<NixImage['status']>): Promise<void> {
    for (const event of imageEvents(before, after)) {
      await recordEvent(this.core, image, event.type, event.reason, event.message, this.deps.onWrite, this.deps.log);
    }
    this.deps.log.info('image status', { namespace: image.metadata.namespace, name: image.metadata.name, conditions: after.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`) });
  }

  private async addFinalizer(image: NixImage): Promise<void> {
    this.deps.onWrite('NixImage');
    await this.custom.patchNamespacedCustomObject(
      {
        ...NIX_IMAGE_PATH,
        namespace: image.metadata.namespace,
        name: image.metadata.name,
        body: { metadata: { finalizers: [...(image.metadata.finalizers ?? []), TAG_FINALIZER], resourceVersion: image.metadata.resourceVersion } },
        fieldManager: FIELD_MANAGER,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Deleting a NixImage removes its tag from the registry (blobs stay until garbage collection). */
  private async finalize(image: NixImage): Promise<ReconcileResult> {
    for (const key of this.unverified.keys()) if (key.startsWith(`${image.metadata.uid}/`)) this.unverified.delete(key);
    if (!image.metadata.finalizers?.includes(TAG_FINALIZER)) return {};
    const { namespace } = image.metadata;
    const instance = this.deps.caches.instances.get(image.spec.instanceRef.name, namespace);
    const service = instance ? this.deps.caches.services.get(instance.metadata.name, namespace) : undefined;
    const clusterIP = service?.spec?.clusterIP;
    const claimedByOther = conflictingClaim(image, this.deps.caches.images.list(namespace)) !== undefined;
    if (instance && clusterIP && !claimedByOther && image.status?.digest) {
      const secret = await this.core.readNamespacedSecret({ name: pushTokenSecretName(instance.metadata.name), namespace });
      const token = Buffer.from(secret.data?.[PUSH_TOKEN_KEY] ?? '', 'base64').toString('utf8');
      const port = instance.spec.service.port;
      const ca = instance.status?.tls?.caBundle;
      // Over HTTPS by the name the certificate carries (cluster DNS resolves it to the ClusterIP).
      const tls = tlsMode(instance) && ca ? { ca } : undefined;
      const tag = { registry: tls ? `${verificationName(instance)}:${port}` : `${clusterIP}:${port}`, name: repositoryName(image), tag: image.spec.tag };
      await (this.deps.deleteTag ?? defaultTagDeleter)(tag, token, tls);
    }
    this.deps.onWrite('NixImage');
    await this.custom.patchNamespacedCustomObject(
      {
        ...NIX_IMAGE_PATH,
        namespace,
        name: image.metadata.name,
        body: { metadata: { finalizers: image.metadata.finalizers.filter((f) => f !== TAG_FINALIZER), resourceVersion: image.metadata.resourceVersion } },
        fieldManager: FIELD_MANAGER,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return {};
  }
}

/** Asking the registry again about an unconfirmed digest: 2 s, doubling, at most 5 min. */
const VERIFY_BACKOFF_BASE_MS = 2000;
const VERIFY_BACKOFF_MAX_MS = 5 * 60_000;

/** How soon to look again at a build Job name taken by a Job this NixImage does not control. */
const FOREIGN_JOB_REQUEUE_MS = 30_000;

/** Whether `object`'s controller (its one ownerReference with `controller: true`) has this UID. */
function isControlledBy(object: KubernetesObject, uid: string): boolean {
  return object.metadata?.ownerReferences?.some((r) => r.controller === true && r.uid === uid) ?? false;
}

const NIX_IMAGE_PATH = { group: NIX_IMAGE.group, version: NIX_IMAGE.version, plural: NIX_IMAGE.plural };

/** operator-api's deleteTag: a token for `repository:NAME:delete` alone, bought with the push token. */
const defaultTagDeleter: TagDeleter = (tag, pushToken, tls) => deleteTag(tag, pushToken, tls ? { scheme: 'https', ca: tls.ca } : {});

/**
 * Ready for the instance's current spec: a Ready written for an earlier generation may predate a
 * change the operator has not judged yet (a new spec.image the allow-list refuses, say), and a
 * build Job would run that image meanwhile. A condition without observedGeneration is taken as is.
 */
function isCurrentlyReady(instance: NixeryInstance): boolean {
  const ready = getCondition(instance.status?.conditions, 'Ready');
  if (ready?.status !== 'True') return false;
  return ready.observedGeneration === undefined || ready.observedGeneration >= (instance.metadata.generation ?? 0);
}
