// Reconciles one NixeryInstance: the secrets it generates once, its serving certificate, its
// access policy, then the desired objects (applied only where they differ), observe, and write
// the status only when it changed. What it owns in its namespace goes with it through owner
// references; what it cannot own (the ClusterRoleBinding, pull Secrets in other namespaces) its
// finalizer removes, as it removes spec.nodeConfig's DaemonSet and CA copy in the node-config
// namespace.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isDeepStrictEqual } from 'node:util';
import {
  PatchStrategy,
  setHeaderOptions,
  type ApisApi,
  type AppsV1Api,
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObject,
  type ObjectCache,
  type RbacAuthorizationV1Api,
  type V1ConfigMap,
  type V1DaemonSet,
  type V1DeleteOptions,
  type V1Deployment,
  type V1PersistentVolumeClaim,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/operator-api';
import { isConditionTrue } from '../api/conditions.ts';
import { API_VERSION, FIELD_MANAGER, NIXERY_INSTANCE, type NixeryInstance, type NixImage } from '../api/types.ts';
import type { ReconcileResult } from '../controller/controller.ts';
import { conflictingClaim } from '../image/conflict.ts';
import { repositoryName } from '../image/desired-job.ts';
import { checkOwnership, ownershipProblem, OwnershipConflictError, type Applier } from '../kube/applier.ts';
import { recordEvent, type EventClient } from '../kube/events.ts';
import { statusOf } from '../kube/http-status.ts';
import { commonLabels, controllerReference } from '../kube/labels.ts';
import {
  authDelegatorBindingName,
  buildServiceAccountName,
  desiredAuthDelegatorBinding,
  desiredPolicyConfigMap,
  desiredPullSecret,
  INSTANCE_NAMESPACE_LABEL,
  pullSecretName,
  unownedLabels,
  pullUserSecretName,
  renderPolicy,
  tokenKeySecretName,
  TOKEN_KEY_KEY,
  type BuildGrant,
} from './auth.ts';
import { caRenewal, createCertificateAuthority, issueServingCertificate, servingRenewal } from './certificates.ts';
import { generatePullUser, generateTokenKey, PULL_USER } from './credentials.ts';
import {
  desiredInstance,
  desiredNodeConfig,
  desiredObjects,
  legacyNodeConfigName,
  nodeConfigCaConfigMap,
  nodeConfigName,
  nodeLocalName,
  pvcName,
  pushTokenSecretName,
  PUSH_TOKEN_KEY,
  type DesiredNodeConfig,
} from './desired.ts';
import { DEFAULT_GATES, gateRefusals, type GateRefusals, type PrivilegeGates } from './gates.ts';
import { instanceEvents } from './events.ts';
import { computeInstanceStatus, type InstanceObservation } from './status.ts';
import { instanceStorageStatus, readStorageStatus, type StorageStatusReader } from './storage-status.ts';
import {
  caBundleOf,
  caSecretName,
  CERT_MANAGER_GROUP,
  desiredCaBundleConfigMap,
  desiredCertificate,
  servingNames,
  servingSecretName,
  tlsMode,
  verificationName,
  type TlsObservation,
} from './tls.ts';

/**
 * Removes what the instance made outside its namespace (cluster scope, other namespaces), which
 * owner references cannot reach.
 */
export const CLEANUP_FINALIZER = 'nixery.dev/cleanup';
/** Look at a self-signed certificate at least this often; its renewal time may be months away. */
const MAX_RENEWAL_WAIT_MS = 12 * 3_600_000;

export interface InstanceCaches {
  instances: ObjectCache<NixeryInstance>;
  /** NixImages: each of an instance's gets a push grant in its policy. */
  images: ObjectCache<NixImage>;
  /** What the operator made, by kind (label-selected informers): Secrets and ClusterRoleBindings too. */
  owned: Record<string, ObjectCache<KubernetesObject>>;
}

export interface ProbeTarget {
  url: string;
  /** With HTTPS: the CA bundle to trust and the name the certificate must carry. */
  ca?: string;
  servername?: string;
}

export type RegistryProbe = (target: ProbeTarget) => Promise<{ ok: boolean; error?: string }>;

/** The API calls of a reconcile besides applying: manager.ts passes the real clients, tests fakes. */
export interface InstanceClients {
  core: Pick<CoreV1Api, 'readNamespacedSecret' | 'createNamespacedSecret' | 'deleteNamespacedSecret' | 'readNamespacedConfigMap' | 'deleteNamespacedConfigMap'> & EventClient;
  /** Removing a node-local or node-config DaemonSet the operator no longer allows or the instance no longer asks for. */
  apps: Pick<AppsV1Api, 'readNamespacedDaemonSet' | 'deleteNamespacedDaemonSet'>;
  customObjects: Pick<CustomObjectsApi, 'patchNamespacedCustomObjectStatus' | 'patchNamespacedCustomObject' | 'getNamespacedCustomObject'>;
  rbac: Pick<RbacAuthorizationV1Api, 'readClusterRoleBinding' | 'deleteClusterRoleBinding'>;
  /** Discovery: whether cert-manager's API is served. */
  apis: Pick<ApisApi, 'getAPIVersions'>;
}

export interface InstanceReconcilerDeps {
  clients: InstanceClients;
  applier: Pick<Applier, 'apply'>;
  caches: InstanceCaches;
  log: Logger;
  onWrite: (kind: string) => void;
  probe?: RegistryProbe;
  /** GET /storage-status through the Service (storage-status.ts's readStorageStatus by default). */
  storageStatus?: StorageStatusReader;
  now?: () => string;
  /** How soon to look again at an instance that is not Ready yet. */
  notReadyRequeueMs?: number;
  /** What instance authors may ask for (main.ts's flags); DEFAULT_GATES when unset. */
  gates?: PrivilegeGates;
  /** Where spec.nodeConfig's DaemonSets run (--node-config-namespace: the operator's own by default). */
  nodeConfigNamespace: string;
}

/** GET /v2/ through the Service; over HTTPS trusting `ca` and checking `servername`. Bounded to 3 s. */
export const probeRegistry: RegistryProbe = ({ url, ca, servername }) =>
  new Promise((resolve) => {
    const request = (url.startsWith('https:') ? https.request : http.request)(
      url,
      { ...(ca ? { ca } : {}), ...(servername ? { servername } : {}), signal: AbortSignal.timeout(3000) },
      (response) => {
        response.resume();
        // A registry that wants a login challenges anonymous clients: that 401 is an answer too.
        const isRegistry = response.headers['docker-distribution-api-version'] === 'registry/2.0';
        const ok = response.statusCode === 200 || (response.statusCode === 401 && isRegistry);
        resolve(ok ? { ok: true } : { ok: false, error: `GET ${url} answered ${response.statusCode}` });
      },
    );
    request.on('error', (error) => resolve({ ok: false, error: `GET ${url} failed: ${error.message}` }));
    request.end();
  });

export class InstanceReconciler {
  private readonly deps: InstanceReconcilerDeps;
  private readonly core: InstanceClients['core'];
  private readonly customObjects: InstanceClients['customObjects'];

  constructor(deps: InstanceReconcilerDeps) {
    this.deps = deps;
    this.core = deps.clients.core;
    this.customObjects = deps.clients.customObjects;
  }

  private now(): Date {
    return new Date((this.deps.now ?? (() => new Date().toISOString()))());
  }

  reconcile = async (key: string): Promise<ReconcileResult> => {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches, applier } = this.deps;
    const instance = caches.instances.get(name, namespace);
    if (!instance) return {};
    if (instance.metadata.deletionTimestamp) return this.finalize(instance);
    if (!instance.metadata.finalizers?.includes(CLEANUP_FINALIZER)) await this.setFinalizers(instance, [...(instance.metadata.finalizers ?? []), CLEANUP_FINALIZER]);

    const desired = desiredInstance(instance);
    const refusals = gateRefusals(instance, this.deps.gates ?? DEFAULT_GATES);
    // Both run the image, the DaemonSet on the node's network too: a refused image runs in
    // neither (a Deployment from before keeps the image it was allowed to have).
    const refused = new Set<object | undefined>([
      ...(refusals.image ? [desired.deployment, desired.nodeLocal] : []),
      ...(refusals.nodeLocal ? [desired.nodeLocal] : []),
    ]);
    const nodeConfigRefused = refusals.image !== undefined || refusals.nodeConfig !== undefined;
    let nodeConfig: DesiredNodeConfig | undefined;
    let tls: { observation?: TlsObservation; renewAt?: Date } = {};
    let conflict: InstanceObservation['conflict'];
    try {
      await this.ensureSecret(instance, pushTokenSecretName(name), 'push-token', async () => ({ [PUSH_TOKEN_KEY]: randomBytes(32).toString('hex') }));
      await this.ensureSecret(instance, tokenKeySecretName(name), 'token-key', async () => ({ [TOKEN_KEY_KEY]: generateTokenKey() }));
      const pullUser = await this.ensureSecret(instance, pullUserSecretName(name), 'pull-user', async () => {
        const user = generatePullUser();
        return { username: user.username, password: user.password, htpasswd: user.htpasswd };
      });
      tls = await this.reconcileTls(instance);
      if (tls.observation?.ready) {
        const configMap = desiredCaBundleConfigMap(instance, tls.observation.caBundle);
        await applier.apply(configMap, this.cached('ConfigMap', configMap.metadata!.name!, namespace));
      }
      const policy = desiredPolicyConfigMap(instance, renderPolicy(instance, this.buildGrants(instance), pullUser.username ?? PULL_USER));
      await applier.apply(policy, this.cached('ConfigMap', policy.metadata!.name!, namespace));

      for (const object of desiredObjects(desired)) {
        if (refused.has(object)) continue;
        await applier.apply(object, this.cached(object.kind!, object.metadata!.name!, namespace));
      }
      if (!desired.nodeLocal || refusals.nodeLocal) await this.deleteOwnDaemonSet(instance, nodeLocalName(name));
      // Where it ran before it moved to the node-config namespace.
      await this.deleteOwnDaemonSet(instance, legacyNodeConfigName(name));
      nodeConfig = desiredNodeConfig(instance, {
        clusterIP: this.clusterIP(instance),
        namespace: this.deps.nodeConfigNamespace,
        ...(tls.observation?.ready ? { caBundle: tls.observation.caBundle } : {}),
      });
      if (nodeConfig && !nodeConfigRefused) {
        const { caConfigMap, daemonSet } = nodeConfig;
        // The CA first: the pods mount it.
        if (caConfigMap) await applier.apply(caConfigMap, this.cached('ConfigMap', caConfigMap.metadata!.name!, caConfigMap.metadata!.namespace));
        // TLS turned off: the copy goes (the DaemonSet's new pods no longer mount it).
        else if (!servingSecretName(instance)) await this.deleteNodeConfigCa(instance, { fresh: false });
        await applier.apply(daemonSet, this.cached('DaemonSet', daemonSet.metadata!.name!, daemonSet.metadata!.namespace));
      }
      // Not while the ClusterIP is merely unknown: its pods' SIGTERM removes the nodes' files.
      if (!instance.spec.nodeConfig?.enabled || refusals.nodeConfig) await this.deleteNodeConfig(instance, { fresh: false });
      const binding = desiredAuthDelegatorBinding(instance);
      await applier.apply(binding, this.cached('ClusterRoleBinding', binding.metadata!.name!, undefined));
      await this.reconcilePullSecrets(instance, { username: pullUser.username ?? PULL_USER, password: pullUser.password ?? '' });
    } catch (error) {
      if (!(error instanceof OwnershipConflictError)) throw error;
      // Stop here: what follows builds on it (the Deployment mounts the Secrets, the Service
      // selects the Deployment's pods), and someone else's push token must never become ours.
      conflict = { kind: error.kind, name: error.objectName, ...(error.namespace ? { namespace: error.namespace } : {}), why: error.why };
      this.deps.log.warn('an object the instance would write is not its own; leaving it alone', { namespace, name, object: `${error.kind} ${error.objectName}`, why: error.why });
    }

    const observed: InstanceObservation = conflict
      ? { conflict, ...(tls.observation ? { tls: tls.observation } : {}), refusals }
      : await this.observe(instance, desired, nodeConfigRefused ? undefined : nodeConfig, tls.observation, refusals);

    const status = computeInstanceStatus(instance, observed, this.now().toISOString());
    // Key order does not matter: the API server need not keep ours.
    if (!isDeepStrictEqual(status, instance.status ?? {})) {
      this.deps.onWrite('NixeryInstance/status');
      // A merge patch keeps what it does not mention: a field that is gone must be sent as null.
      const tls = mergePatchOf(instance.status?.tls, status.tls);
      const body = { status: { ...status, ...(tls === undefined ? {} : { tls }) } };
      await this.customObjects.patchNamespacedCustomObjectStatus(
        { group: NIXERY_INSTANCE.group, version: NIXERY_INSTANCE.version, plural: NIXERY_INSTANCE.plural, namespace, name, body, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.deps.log.info('instance status', { namespace, name, conditions: status.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`) });
      // After the write: a status that did not land is computed again next time, events with it.
      for (const event of instanceEvents(instance.status, status)) {
        await recordEvent(this.core, { ...instance, apiVersion: API_VERSION, kind: NIXERY_INSTANCE.kind }, event.type, event.reason, event.message, this.deps.onWrite, this.deps.log);
      }
    }
    const waits = [
      isConditionTrue(status.conditions, 'Ready') ? undefined : (this.deps.notReadyRequeueMs ?? 3000),
      tls.renewAt ? Math.min(Math.max(tls.renewAt.getTime() - this.now().getTime(), 1000), MAX_RENEWAL_WAIT_MS) : undefined,
    ].filter((w): w is number => w !== undefined);
    return waits.length ? { requeueAfterMs: Math.min(...waits) } : {};
  };

  /** What the instance's objects say once applied: the Deployment, the volume, Secrets the spec names, and /v2/. */
  private async observe(
    instance: NixeryInstance,
    desired: ReturnType<typeof desiredInstance>,
    applied: DesiredNodeConfig | undefined,
    tls: TlsObservation | undefined,
    refusals: GateRefusals,
  ): Promise<InstanceObservation> {
    const { name, namespace } = instance.metadata;
    const nodeLocal = desired.nodeLocal && !refusals.nodeLocal ? (this.cached('DaemonSet', desired.nodeLocal.metadata!.name!, namespace) as V1DaemonSet | undefined) : undefined;
    // The one just applied counts too (no pods yet): NodeConfigReady waits for the Service only while there is no ClusterIP.
    const nodeConfig =
      instance.spec.nodeConfig?.enabled && !refusals.nodeConfig
        ? ((this.cached('DaemonSet', nodeConfigName(namespace, name), this.deps.nodeConfigNamespace) as V1DaemonSet | undefined) ?? applied?.daemonSet)
        : undefined;
    const observed: InstanceObservation = {
      deployment: this.cached('Deployment', name, namespace) as V1Deployment | undefined,
      refusals,
      ...(nodeLocal ? { nodeLocal } : {}),
      ...(nodeConfig ? { nodeConfig } : {}),
      ...(desired.persistentVolumeClaim ? { persistentVolumeClaim: this.cached('PersistentVolumeClaim', pvcName(instance), namespace) as V1PersistentVolumeClaim | undefined } : {}),
      ...(tls ? { tls } : {}),
    };
    for (const secret of [instance.spec.storage.gcs?.credentialsSecret?.name, instance.spec.storage.s3?.credentialsSecret?.name, instance.spec.auth?.htpasswdSecretRef?.name]) {
      if (secret && !observed.missingSecret && !(await this.readSecret(namespace, secret))) observed.missingSecret = secret;
    }
    const service = this.cached('Service', name, namespace) as V1Service | undefined;
    const clusterIP = service?.spec?.clusterIP;
    const tlsUsable = !tls || tls.ready;
    if ((observed.deployment?.status?.readyReplicas ?? 0) > 0 && clusterIP && clusterIP !== 'None' && tlsUsable) {
      // Through the Service, as pods pull: ready replicas alone do not prove the registry answers.
      const port = instance.spec.service.port;
      const target: ProbeTarget = tls?.ready
        ? { url: `https://${clusterIP}:${port}/v2/`, ca: tls.caBundle, servername: verificationName(instance) }
        : { url: `http://${clusterIP}:${port}/v2/` };
      const result = await (this.deps.probe ?? probeRegistry)(target);
      observed.registryAnswers = result.ok;
      if (result.error) observed.registryError = result.error;
      if (result.ok) {
        const storage = instanceStorageStatus(await (this.deps.storageStatus ?? readStorageStatus)({ ...target, url: target.url.replace(/\/v2\/$/, '/storage-status') }));
        if (storage) observed.storage = storage;
      }
    }
    return observed;
  }

  private cached(kind: string, name: string, namespace: string | undefined): KubernetesObject | undefined {
    return this.deps.caches.owned[kind]?.get(name, namespace);
  }

  /** The Service's ClusterIP, once it has one (the certificate names it too). */
  private clusterIP(instance: NixeryInstance): string | undefined {
    return (this.cached('Service', instance.metadata.name, instance.metadata.namespace) as V1Service | undefined)?.spec?.clusterIP;
  }

  /** One push grant per NixImage of this instance that builds (not being deleted, not losing a claim). */
  private buildGrants(instance: NixeryInstance): BuildGrant[] {
    const all = this.deps.caches.images.list(instance.metadata.namespace);
    return all
      .filter((image) => image.spec.instanceRef.name === instance.metadata.name && !image.metadata.deletionTimestamp && !conflictingClaim(image, all))
      .map((image) => ({ serviceAccount: buildServiceAccountName(image.metadata.name), repository: repositoryName(image) }));
  }

  /**
   * The instance's node-local or node-config DaemonSet, made while its spec field was on and the
   * operator allowed it (a hostNetwork pod, or a root pod writing the runtime's configuration, on
   * every node must not outlive either): only its own (its controller reference), by the UID the
   * cache saw. Ours always carries the managed-by label, so one the cache lacks is not ours and stays.
   */
  private async deleteOwnDaemonSet(instance: NixeryInstance, name: string): Promise<void> {
    const { namespace } = instance.metadata;
    const existing = this.cached('DaemonSet', name, namespace);
    if (!existing) return;
    const ours: V1DaemonSet = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name, namespace, ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata })] },
    };
    await this.deleteIfOurs(
      instance,
      ours,
      async () => existing,
      (body) => this.deps.clients.apps.deleteNamespacedDaemonSet({ name, namespace, body }),
    );
  }

  /**
   * spec.nodeConfig's DaemonSet in the node-config namespace (its pods' SIGTERM removes the files
   * they wrote on the nodes), then its CA copy: only this instance's (identity labels), by UID.
   * `fresh`: not only what the cache holds but, failing that, what the API server has (the
   * finalizer: one applied a moment ago may not be cached yet). Only while the operator may
   * make them: otherwise (--allow-node-config off) it may lack the rights there, and made none.
   */
  private async deleteNodeConfig(instance: NixeryInstance, options: { fresh: boolean }): Promise<void> {
    const { name: instanceName, namespace: instanceNamespace } = instance.metadata;
    const namespace = this.deps.nodeConfigNamespace;
    const name = nodeConfigName(instanceNamespace, instanceName);
    const ours: V1DaemonSet = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name, namespace, labels: unownedLabels(instance, 'node-config') } };
    const { apps } = this.deps.clients;
    await this.deleteIfOurs(
      instance,
      ours,
      () => this.cachedOrRead('DaemonSet', name, namespace, options.fresh, () => apps.readNamespacedDaemonSet({ name, namespace })),
      (body) => apps.deleteNamespacedDaemonSet({ name, namespace, body }),
    );
    await this.deleteNodeConfigCa(instance, options);
  }

  private async deleteNodeConfigCa(instance: NixeryInstance, options: { fresh: boolean }): Promise<void> {
    const namespace = this.deps.nodeConfigNamespace;
    const ours = nodeConfigCaConfigMap(instance, namespace, '');
    const name = ours.metadata!.name!;
    await this.deleteIfOurs(
      instance,
      ours,
      () => this.cachedOrRead('ConfigMap', name, namespace, options.fresh, () => this.core.readNamespacedConfigMap({ name, namespace })),
      (body) => this.core.deleteNamespacedConfigMap({ name, namespace, body }),
    );
  }

  /** The cached object; else, with `fresh` and the node-config gate open, the API server's; else a 404. */
  private async cachedOrRead(kind: string, name: string, namespace: string, fresh: boolean, read: () => Promise<KubernetesObject>): Promise<KubernetesObject> {
    const cached = this.cached(kind, name, namespace);
    if (cached) return cached;
    if (fresh && (this.deps.gates ?? DEFAULT_GATES).allowNodeConfig) return read();
    throw new NotCached(kind, name);
  }

  // ---- TLS ----

  private async reconcileTls(instance: NixeryInstance): Promise<{ observation?: TlsObservation; renewAt?: Date }> {
    switch (tlsMode(instance)) {
      case undefined:
        return {};
      case 'secretName':
        return { observation: await this.observeServingSecret(instance, 'SecretNotFound') };
      case 'issuerRef':
        return { observation: await this.reconcileCertificate(instance) };
      case 'selfSigned':
        return this.reconcileSelfSigned(instance);
    }
  }

  /** The serving Secret as it is: there, with a key pair, and with something to trust. */
  private async observeServingSecret(instance: NixeryInstance, whenMissing: 'SecretNotFound' | 'CertificateIssuing'): Promise<TlsObservation> {
    const secretName = servingSecretName(instance)!;
    const secret = await this.readSecret(instance.metadata.namespace, secretName);
    if (!secret) {
      const message = whenMissing === 'SecretNotFound' ? `Secret ${secretName} does not exist` : `waiting for cert-manager to issue Certificate ${desiredCertificate(instance).metadata!.name} into Secret ${secretName}`;
      return { ready: false, reason: whenMissing, message, secretName };
    }
    const caBundle = caBundleOf(secret.data);
    if (!secret.data?.['tls.crt'] || !secret.data?.['tls.key'] || !caBundle) {
      if (whenMissing === 'CertificateIssuing') return { ready: false, reason: 'CertificateIssuing', message: `Secret ${secretName} holds no certificate yet`, secretName };
      return { ready: false, reason: 'SecretInvalid', message: `Secret ${secretName} needs tls.crt and tls.key (a kubernetes.io/tls Secret)`, secretName };
    }
    return { ready: true, secretName, caBundle, message: `serving the certificate of Secret ${secretName}` };
  }

  private async reconcileCertificate(instance: NixeryInstance): Promise<TlsObservation> {
    const certificate = desiredCertificate(instance, this.clusterIP(instance));
    const { namespace } = instance.metadata;
    const groups = await this.deps.clients.apis.getAPIVersions();
    const served = groups.groups.some((g) => g.name === CERT_MANAGER_GROUP && g.versions.some((v) => v.version === 'v1'));
    if (!served) {
      return {
        ready: false,
        reason: 'CertManagerNotInstalled',
        message: `spec.tls.issuerRef needs cert-manager: the API ${CERT_MANAGER_GROUP}/v1 is not served in this cluster`,
        secretName: servingSecretName(instance)!,
      };
    }
    let current: KubernetesObject | undefined;
    try {
      current = (await this.customObjects.getNamespacedCustomObject({ group: CERT_MANAGER_GROUP, version: 'v1', plural: 'certificates', namespace, name: certificate.metadata!.name! })) as KubernetesObject;
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
    await this.deps.applier.apply(certificate, current, 'server');
    return this.observeServingSecret(instance, 'CertificateIssuing');
  }

  /** The CA (made once, replaced near its end) and the serving certificate it signs (renewed). */
  private async reconcileSelfSigned(instance: NixeryInstance): Promise<{ observation: TlsObservation; renewAt: Date }> {
    const { name, namespace } = instance.metadata;
    const now = this.now();
    const decode = (secret: V1Secret | undefined, key: string) => (secret?.data?.[key] ? Buffer.from(secret.data[key], 'base64').toString('utf8') : undefined);

    // From the API server, not the cache: a Secret renewed a moment ago may not have reached it.
    const caSecret = await this.readSecret(namespace, caSecretName(name), { fresh: true });
    let ca = { certPem: decode(caSecret, 'tls.crt') ?? '', keyPem: decode(caSecret, 'tls.key') ?? '' };
    const caDecision = caRenewal(ca.keyPem ? ca.certPem : undefined, now);
    if (caDecision.renew) {
      this.deps.log.info('making the instance CA', { namespace, name, why: caDecision.why });
      ca = await createCertificateAuthority(`nixery ${namespace}/${name} CA`, now);
      await this.applySecret(instance, caSecret, caSecretName(name), 'tls-ca', 'kubernetes.io/tls', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    }

    const secretName = servingSecretName(instance)!;
    const serving = await this.readSecret(namespace, secretName, { fresh: true });
    const names = servingNames(instance, this.clusterIP(instance));
    const decision = servingRenewal(decode(serving, 'tls.key') ? decode(serving, 'tls.crt') : undefined, ca.certPem, names, now);
    let renewAt: Date;
    if (decision.renew || decode(serving, 'ca.crt') !== ca.certPem) {
      this.deps.log.info('issuing the serving certificate', { namespace, name, why: decision.renew ? decision.why : 'its ca.crt is not the CA' });
      const issued = await issueServingCertificate(ca, names, now);
      await this.applySecret(instance, serving, secretName, 'tls', 'kubernetes.io/tls', { 'tls.crt': issued.certPem, 'tls.key': issued.keyPem, 'ca.crt': ca.certPem });
      const next = servingRenewal(issued.certPem, ca.certPem, names, now);
      renewAt = next.renew ? now : next.renewAt;
    } else {
      renewAt = decision.renewAt;
    }
    if (!caDecision.renew) renewAt = new Date(Math.min(renewAt.getTime(), caDecision.renewAt.getTime()));
    return { observation: { ready: true, secretName, caBundle: ca.certPem, message: `serving a certificate of the instance's own CA (Secret ${caSecretName(name)}), renewed after ${renewAt.toISOString()}` }, renewAt };
  }

  // ---- Secrets ----

  /** From the cache (the operator's own Secrets), else from the API server; undefined when there is none. */
  private async readSecret(namespace: string, name: string, options: { fresh?: boolean } = {}): Promise<V1Secret | undefined> {
    const cached = options.fresh ? undefined : (this.cached('Secret', name, namespace) as V1Secret | undefined);
    if (cached) return cached;
    try {
      return await this.core.readNamespacedSecret({ name, namespace });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * A Secret made once with `make`'s values and never rewritten (running pods and pull Secrets
   * hold them). Returns its values, decoded. One that exists is used only when it carries the
   * instance's controller reference: a push token someone else made (and so knows) would be
   * the registry's administrator credential.
   */
  private async ensureSecret(instance: NixeryInstance, name: string, component: string, make: () => Promise<Record<string, string>>): Promise<Record<string, string>> {
    const { namespace } = instance.metadata;
    const existing = await this.readSecret(namespace, name);
    const values = existing ? undefined : await make();
    const body = this.secretBody(instance, name, component, 'Opaque', values ?? {});
    if (existing) {
      checkOwnership(body, existing);
      return decodeAll(existing.data);
    }
    this.deps.onWrite('Secret');
    try {
      await this.core.createNamespacedSecret({ namespace, fieldManager: FIELD_MANAGER, body });
      return values!;
    } catch (error) {
      if (statusOf(error) !== 409) throw error;
      // Made meanwhile, by an earlier run whose Secret the cache had not seen yet (that one
      // holds) or by someone else (a conflict).
      const winner = await this.core.readNamespacedSecret({ name, namespace });
      checkOwnership(body, winner);
      return decodeAll(winner.data);
    }
  }

  /** `current`: the Secret as the API server just answered (undefined: there is none). */
  private async applySecret(instance: NixeryInstance, current: V1Secret | undefined, name: string, component: string, type: string, values: Record<string, string>): Promise<void> {
    const body = this.secretBody(instance, name, component, type, values);
    await this.deps.applier.apply(body, current, 'server');
  }

  private secretBody(instance: NixeryInstance, name: string, component: string, type: string, values: Record<string, string>): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type,
      metadata: {
        name,
        namespace: instance.metadata.namespace,
        labels: commonLabels(instance.metadata.name, component),
        ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata })],
      },
      data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    };
  }

  // ---- pull Secrets and cleanup ----

  /** `<instance>-pull` in each namespace the spec names, and in no other. */
  private async reconcilePullSecrets(instance: NixeryInstance, credentials: { username: string; password: string }): Promise<void> {
    const wanted = new Set(instance.spec.auth?.pullSecretNamespaces ?? []);
    for (const namespace of [...wanted].sort()) {
      const secret = desiredPullSecret(instance, namespace, credentials);
      try {
        await this.deps.applier.apply(secret, this.cached('Secret', secret.metadata!.name!, namespace));
      } catch (error) {
        // A namespace that does not exist (yet): the others still get theirs, and the resync
        // writes this one once it is there.
        if (statusOf(error) !== 404) throw error;
        this.deps.log.warn('no pull Secret: the namespace does not exist', { namespace: instance.metadata.namespace, name: instance.metadata.name, pullSecretNamespace: namespace });
      }
    }
    for (const namespace of this.pullSecretNamespaces(instance)) {
      if (!wanted.has(namespace)) await this.deletePullSecret(instance, namespace);
    }
  }

  /** The namespaces holding a pull Secret of this instance, as the cache knows them. */
  private pullSecretNamespaces(instance: NixeryInstance): string[] {
    const { name, namespace } = instance.metadata;
    return (this.deps.caches.owned.Secret?.list() ?? [])
      .filter((s) => {
        const labels = s.metadata?.labels ?? {};
        return s.metadata?.name === pullSecretName(name) && labels['app.kubernetes.io/instance'] === name && labels[INSTANCE_NAMESPACE_LABEL] === namespace;
      })
      .map((s) => s.metadata!.namespace!);
  }

  private async deletePullSecret(instance: NixeryInstance, namespace: string): Promise<void> {
    const name = pullSecretName(instance.metadata.name);
    await this.deleteIfOurs(
      instance,
      desiredPullSecret(instance, namespace, { username: '', password: '' }),
      () => this.core.readNamespacedSecret({ name, namespace }),
      (body) => this.core.deleteNamespacedSecret({ name, namespace, body }),
    );
  }

  /**
   * Deletes the object `desired` names only if the one there is this instance's (its identity
   * labels, as the applier checks them): an instance must not take a same-named Secret or binding
   * of someone else's with it. The UID precondition keeps a newer object of that name too.
   */
  private async deleteIfOurs(
    instance: NixeryInstance,
    desired: KubernetesObject,
    read: () => Promise<KubernetesObject>,
    remove: (options: V1DeleteOptions) => Promise<unknown>,
  ): Promise<void> {
    let existing: KubernetesObject;
    try {
      existing = await read();
    } catch (error) {
      ignoreNotFound(error);
      return;
    }
    const problem = ownershipProblem(desired, existing);
    if (problem) {
      this.deps.log.warn('not deleted: it is not this instance\'s', {
        namespace: instance.metadata.namespace,
        name: instance.metadata.name,
        object: `${desired.kind} ${existing.metadata?.namespace ? `${existing.metadata.namespace}/` : ''}${existing.metadata?.name}`,
        why: problem,
      });
      return;
    }
    this.deps.onWrite(desired.kind ?? 'unknown');
    await remove({ preconditions: { uid: existing.metadata!.uid! } }).catch((error: unknown) => {
      // 409: the precondition failed, so the object there now is a newer one, not the one read.
      if (statusOf(error) !== 409) ignoreNotFound(error);
    });
  }

  /** Before the instance goes: its ClusterRoleBinding, pull Secrets and node-config objects, then the finalizer. */
  private async finalize(instance: NixeryInstance): Promise<ReconcileResult> {
    if (!instance.metadata.finalizers?.includes(CLEANUP_FINALIZER)) return {};
    const binding = authDelegatorBindingName(instance);
    await this.deleteIfOurs(
      instance,
      desiredAuthDelegatorBinding(instance),
      () => this.deps.clients.rbac.readClusterRoleBinding({ name: binding }),
      (body) => this.deps.clients.rbac.deleteClusterRoleBinding({ name: binding, body }),
    );
    // The spec's namespaces too: a Secret written a moment ago may not be in the cache yet.
    const namespaces = new Set([...(instance.spec.auth?.pullSecretNamespaces ?? []), ...this.pullSecretNamespaces(instance)]);
    for (const namespace of [...namespaces].sort()) await this.deletePullSecret(instance, namespace);
    await this.deleteNodeConfig(instance, { fresh: true });
    await this.setFinalizers(instance, instance.metadata.finalizers.filter((f) => f !== CLEANUP_FINALIZER));
    return {};
  }

  private async setFinalizers(instance: NixeryInstance, finalizers: string[]): Promise<void> {
    this.deps.onWrite('NixeryInstance');
    await this.customObjects.patchNamespacedCustomObject(
      {
        group: NIXERY_INSTANCE.group,
        version: NIXERY_INSTANCE.version,
        plural: NIXERY_INSTANCE.plural,
        namespace: instance.metadata.namespace,
        name: instance.metadata.name,
        // resourceVersion: a conflict instead of overwriting someone else's finalizers.
        body: { metadata: { finalizers, resourceVersion: instance.metadata.resourceVersion } },
        fieldManager: FIELD_MANAGER,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }
}

/** `next` as a merge patch over `previous`: keys `next` lacks are nulled; no object at all is null. */
function mergePatchOf<T extends object>(previous: T | undefined, next: T | undefined): Record<string, unknown> | null | undefined {
  if (!next) return previous ? null : undefined;
  return { ...Object.fromEntries(Object.keys(previous ?? {}).map((k) => [k, null])), ...next };
}

function decodeAll(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

function ignoreNotFound(error: unknown): void {
  if (statusOf(error) !== 404) throw error;
}

/** Not in the cache, and not to be asked for: as good as a 404 to deleteIfOurs. */
class NotCached extends Error {
  readonly statusCode = 404;

  constructor(kind: string, name: string) {
    super(`${kind} ${name} is not cached`);
  }
}
