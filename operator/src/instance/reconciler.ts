// Reconciles one NixeryInstance: apply what differs from the desired objects, observe, and write
// the status only when it changed. Deletion needs no code: owner references let the garbage
// collector remove everything the instance owns.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObject,
  type ObjectCache,
  type V1Deployment,
  type V1PersistentVolumeClaim,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/operator-api';
import { isConditionTrue } from '../api/conditions.ts';
import { API_VERSION, FIELD_MANAGER, NIXERY_INSTANCE, type NixeryInstance } from '../api/types.ts';
import type { ReconcileResult } from '../controller/controller.ts';
import type { Applier } from '../kube/applier.ts';
import { statusOf } from '../kube/http-status.ts';
import { commonLabels, controllerReference } from '../kube/labels.ts';
import { desiredInstance, desiredObjects, pvcName, pushTokenSecretName, PUSH_TOKEN_KEY } from './desired.ts';
import { computeInstanceStatus, type InstanceObservation } from './status.ts';

export interface InstanceCaches {
  instances: ObjectCache<NixeryInstance>;
  owned: Record<string, ObjectCache<KubernetesObject>>;
}

export type RegistryProbe = (url: string) => Promise<{ ok: boolean; error?: string }>;

/** The API calls of a reconcile besides applying: manager.ts passes the real clients, tests fakes. */
export interface InstanceClients {
  core: Pick<CoreV1Api, 'readNamespacedSecret' | 'createNamespacedSecret'>;
  customObjects: Pick<CustomObjectsApi, 'patchNamespacedCustomObjectStatus'>;
}

export interface InstanceReconcilerDeps {
  clients: InstanceClients;
  applier: Pick<Applier, 'apply'>;
  caches: InstanceCaches;
  log: Logger;
  onWrite: (kind: string) => void;
  probe?: RegistryProbe;
  now?: () => string;
  /** How soon to look again at an instance that is not Ready yet. */
  notReadyRequeueMs?: number;
}

export const probeRegistry: RegistryProbe = async (url) => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    await response.body?.cancel();
    // A registry with pushing enabled challenges anonymous clients: that 401 is an answer too.
    const isRegistry = response.headers.get('docker-distribution-api-version') === 'registry/2.0';
    return response.status === 200 || (response.status === 401 && isRegistry)
      ? { ok: true }
      : { ok: false, error: `GET ${url} answered ${response.status}` };
  } catch (error) {
    return { ok: false, error: `GET ${url} failed: ${(error as Error).message}` };
  }
};

export class InstanceReconciler {
  private readonly deps: InstanceReconcilerDeps;
  private readonly core: InstanceClients['core'];
  private readonly customObjects: InstanceClients['customObjects'];

  constructor(deps: InstanceReconcilerDeps) {
    this.deps = deps;
    this.core = deps.clients.core;
    this.customObjects = deps.clients.customObjects;
  }

  reconcile = async (key: string): Promise<ReconcileResult> => {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches, applier } = this.deps;
    const instance = caches.instances.get(name, namespace);
    if (!instance || instance.metadata.deletionTimestamp) return {};

    const desired = desiredInstance(instance);
    await this.ensurePushToken(instance);
    for (const object of desiredObjects(desired)) {
      await applier.apply(object, caches.owned[object.kind!]?.get(object.metadata!.name!, namespace));
    }

    const observed: InstanceObservation = {
      deployment: caches.owned.Deployment?.get(name, namespace) as V1Deployment | undefined,
      ...(desired.persistentVolumeClaim
        ? { persistentVolumeClaim: caches.owned.PersistentVolumeClaim?.get(pvcName(instance), namespace) as V1PersistentVolumeClaim | undefined }
        : {}),
    };
    const secret = instance.spec.storage.gcs?.credentialsSecret?.name;
    if (secret && !(await this.secretExists(namespace, secret))) observed.missingSecret = secret;
    const service = caches.owned.Service?.get(name, namespace) as V1Service | undefined;
    const clusterIP = service?.spec?.clusterIP;
    if ((observed.deployment?.status?.readyReplicas ?? 0) > 0 && clusterIP && clusterIP !== 'None') {
      // Through the Service, as pods pull: ready replicas alone do not prove the registry answers.
      const result = await (this.deps.probe ?? probeRegistry)(`http://${clusterIP}:${instance.spec.service.port}/v2/`);
      observed.registryAnswers = result.ok;
      if (result.error) observed.registryError = result.error;
    }

    const status = computeInstanceStatus(instance, observed, (this.deps.now ?? (() => new Date().toISOString()))());
    // Key order does not matter: the API server need not keep ours.
    if (!isDeepStrictEqual(status, instance.status ?? {})) {
      this.deps.onWrite('NixeryInstance/status');
      await this.customObjects.patchNamespacedCustomObjectStatus(
        { group: NIXERY_INSTANCE.group, version: NIXERY_INSTANCE.version, plural: NIXERY_INSTANCE.plural, namespace, name, body: { status }, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.deps.log.info('instance status', { namespace, name, conditions: status.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`) });
    }
    return isConditionTrue(status.conditions, 'Ready') ? {} : { requeueAfterMs: this.deps.notReadyRequeueMs ?? 3000 };
  };

  /** Created once with a random token; an existing Secret is never rewritten (running Jobs hold it). */
  private async ensurePushToken(instance: NixeryInstance): Promise<void> {
    const { namespace, name } = instance.metadata;
    const secretName = pushTokenSecretName(name);
    if (await this.secretExists(namespace, secretName)) return;
    this.deps.onWrite('Secret');
    try {
      await this.core.createNamespacedSecret({
        namespace,
        fieldManager: FIELD_MANAGER,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          type: 'Opaque',
          metadata: {
            name: secretName,
            namespace,
            labels: commonLabels(name, 'push-token'),
            ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata })],
          },
          stringData: { [PUSH_TOKEN_KEY]: randomBytes(32).toString('hex') },
        },
      });
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
    }
  }

  private async secretExists(namespace: string, name: string): Promise<boolean> {
    try {
      await this.core.readNamespacedSecret({ name, namespace });
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }
}
