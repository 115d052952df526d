import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubernetesObject, V1ClusterRoleBinding, V1Deployment, V1Secret, V1Service } from '@kubernetes/client-node';
import { silentLogger } from '@nixery/registry/operator-api';
import { getCondition } from '../api/conditions.ts';
import type { NixeryInstance, NixeryInstanceStatus, NixImage } from '../api/types.ts';
import { apiError, cacheOf } from '../test-support/fakes.ts';
import { testImage, testInstance } from '../test-support/fixtures.ts';
import { createCertificateAuthority, issueServingCertificate } from './certificates.ts';
import { Applier, type ObjectApi } from '../kube/applier.ts';
import { CLEANUP_FINALIZER, InstanceReconciler, probeRegistry, type ProbeTarget, type RegistryProbe } from './reconciler.ts';
import { servingNames } from './tls.ts';
import { nodeConfigCaName, nodeConfigName } from './desired.ts';
import { desiredAuthDelegatorBinding, unownedLabels } from './auth.ts';
import type { PrivilegeGates } from './gates.ts';

const NOW = '2026-01-01T00:00:00.000Z';
/** Where spec.nodeConfig's objects go (--node-config-namespace; the operator's own by default). */
const OPERATOR_NAMESPACE = 'nixery-system';
const KEY = 'team-a/nixery';
/** An instance as after its first reconcile: it carries the cleanup finalizer. */
const subject = (spec: Partial<NixeryInstance['spec']> = {}, metadata: Partial<NixeryInstance['metadata']> = {}) =>
  testInstance(spec, { finalizers: [CLEANUP_FINALIZER], resourceVersion: '7', ...metadata });
const instance = subject();

/** The controller reference the operator puts on what the instance owns (uid-1 is the instance's). */
const byInstance = [{ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', name: 'nixery', uid: 'uid-1', controller: true, blockOwnerDeletion: true }];
const ours = <T extends KubernetesObject>(object: T): T => ({ ...object, metadata: { ...object.metadata, ownerReferences: byInstance } });

const deployment = (readyReplicas: number): V1Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'nixery', namespace: 'team-a', generation: 1, ownerReferences: byInstance },
  status: { observedGeneration: 1, readyReplicas, updatedReplicas: 1 },
});
const service: V1Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nixery', namespace: 'team-a', ownerReferences: byInstance }, spec: { clusterIP: '10.0.0.7' } };
const pvc = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'nixery-storage', namespace: 'team-a', ownerReferences: byInstance }, status: { phase: 'Bound' } };
const b64 = (s: string) => Buffer.from(s).toString('base64');
const secret = (namespace: string, name: string, data: Record<string, string>, labels: Record<string, string> = {}): V1Secret => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace, labels },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});
/** The Secrets an instance has made by its second reconcile. */
const generated = [
  ours(secret('team-a', 'nixery-push-token', { token: 'the-push-token' })),
  ours(secret('team-a', 'nixery-token-key', { 'key.pem': 'KEY' })),
  ours(secret('team-a', 'nixery-pull-user', { username: 'nixery-operator-pull', password: 'pull-password', htpasswd: 'nixery-operator-pull:$2b$10$x\n' })),
];

interface World {
  /** What the informer caches hold (the operator's own objects); the API server has them too. */
  owned?: KubernetesObject[];
  /** Objects (not Secrets) the API server has and no cache shows: they lack the operator's labels. */
  others?: KubernetesObject[];
  /** Secrets the API server has (cached or not). */
  secrets?: V1Secret[];
  images?: NixImage[];
  probe?: Awaited<ReturnType<RegistryProbe>>;
  /** What GET /storage-status answers (default: nothing readable). */
  storageStatus?: unknown;
  /** Another run of the operator creates each Secret first, with these values: creating it answers 409. */
  racedBy?: Record<string, Record<string, string>>;
  /** The racing Secrets were made by someone else (no owner reference), not an earlier run. */
  racedByOthers?: boolean;
  /** API groups discovery lists. */
  groups?: string[];
  certificate?: KubernetesObject;
  /** Applying these (`Kind namespace/name`) answers with the status. */
  applyFails?: Record<string, number>;
  /** The operator's flags (main.ts); the reconciler's defaults when unset. */
  gates?: PrivilegeGates;
}

/**
 * A reconciler against fakes. `requests` lists what it asked of the API server, one line each;
 * `statuses` the status bodies it wrote; `probed` what it asked for /v2/; `applied` the objects
 * it applied, by `Kind namespace/name`.
 */
function reconcilerFor(current: NixeryInstance, world: World = {}) {
  const requests: string[] = [];
  const statuses: Record<string, unknown>[] = [];
  const events: string[] = [];
  const probed: ProbeTarget[] = [];
  const storageAsked: ProbeTarget[] = [];
  const applied = new Map<string, KubernetesObject>();
  const server = new Map((world.secrets ?? generated).map((s) => [`${s.metadata!.namespace}/${s.metadata!.name}`, s]));
  const owned: Record<string, KubernetesObject[]> = {};
  for (const object of world.owned ?? []) (owned[object.kind!] ??= []).push(object);
  const keyOf = (o: KubernetesObject) => `${o.kind} ${o.metadata!.namespace ? `${o.metadata!.namespace}/` : ''}${o.metadata!.name}`;
  /** What the API server holds besides Secrets: the cached objects, and others no cache shows. */
  const objects = new Map([...(world.owned ?? []), ...(world.others ?? []), ...(world.certificate ? [world.certificate] : [])].map((o) => [keyOf(o), o]));
  const objectApi = {
    read: async (header: KubernetesObject) => {
      requests.push(`read ${keyOf(header)}`);
      const found = header.kind === 'Secret' ? server.get(`${header.metadata!.namespace}/${header.metadata!.name}`) : objects.get(keyOf(header));
      if (!found) throw apiError(404);
      return found;
    },
    patch: async (desired: KubernetesObject) => {
      const key = keyOf(desired);
      const inCache = world.owned?.some((o) => keyOf(o) === key) || (world.certificate && keyOf(world.certificate) === key);
      requests.push(`apply ${key}${inCache ? ' over the cached one' : ''}`);
      if (world.applyFails?.[key]) throw apiError(world.applyFails[key]);
      applied.set(key, desired);
      objects.set(key, desired);
      if (desired.kind === 'Secret') server.set(`${desired.metadata!.namespace}/${desired.metadata!.name}`, desired as V1Secret);
      return desired;
    },
  } as unknown as ObjectApi;
  const reconciler = new InstanceReconciler({
    clients: {
      core: {
        readNamespacedSecret: async ({ name, namespace }) => {
          const found = server.get(`${namespace}/${name}`);
          if (!found) throw apiError(404);
          return found;
        },
        createNamespacedSecret: async ({ body }) => {
          requests.push(`create Secret ${body.metadata!.name}`);
          const earlier = world.racedBy?.[body.metadata!.name!];
          if (earlier) {
            const made = secret(body.metadata!.namespace!, body.metadata!.name!, earlier);
            server.set(`${body.metadata!.namespace}/${body.metadata!.name}`, world.racedByOthers ? made : ours(made));
            throw apiError(409);
          }
          server.set(`${body.metadata!.namespace}/${body.metadata!.name}`, body);
          return body;
        },
        deleteNamespacedSecret: async ({ name, namespace }) => {
          requests.push(`delete Secret ${namespace}/${name}`);
          if (!server.delete(`${namespace}/${name}`)) throw apiError(404);
          return {};
        },
        readNamespacedConfigMap: async ({ name, namespace }) => {
          requests.push(`read ConfigMap ${namespace}/${name}`);
          const found = objects.get(`ConfigMap ${namespace}/${name}`);
          if (!found) throw apiError(404);
          return found;
        },
        deleteNamespacedConfigMap: async ({ name, namespace, body }) => {
          requests.push(`delete ConfigMap ${namespace}/${name} uid=${body?.preconditions?.uid}`);
          if (!objects.delete(`ConfigMap ${namespace}/${name}`)) throw apiError(404);
          return {};
        },
        createNamespacedEvent: async ({ body }) => {
          events.push(`${body.type} ${body.reason} on ${body.involvedObject.kind} ${body.involvedObject.name}: ${body.message}`);
          return body;
        },
      },
      apps: {
        readNamespacedDaemonSet: async ({ name, namespace }) => {
          requests.push(`read DaemonSet ${namespace}/${name}`);
          const found = objects.get(`DaemonSet ${namespace}/${name}`);
          if (!found) throw apiError(404);
          return found;
        },
        deleteNamespacedDaemonSet: async ({ name, namespace, body }) => {
          requests.push(`delete DaemonSet ${namespace}/${name} uid=${body?.preconditions?.uid}`);
          if (!objects.delete(`DaemonSet ${namespace}/${name}`)) throw apiError(404);
          return {};
        },
      },
      customObjects: {
        patchNamespacedCustomObjectStatus: async ({ plural, name, body }) => {
          requests.push(`patch ${plural}/${name}/status`);
          statuses.push((body as { status: Record<string, unknown> }).status);
          return {};
        },
        patchNamespacedCustomObject: async ({ plural, name, body }) => {
          requests.push(`patch ${plural}/${name} finalizers=[${(body as NixeryInstance).metadata.finalizers!.join(' ')}]`);
          return {};
        },
        getNamespacedCustomObject: async ({ plural, name }) => {
          if (plural === 'certificates' && world.certificate?.metadata?.name === name) return world.certificate;
          throw apiError(404);
        },
      },
      rbac: {
        readClusterRoleBinding: async ({ name }) => {
          const found = objects.get(`ClusterRoleBinding ${name}`);
          if (!found) throw apiError(404);
          return found as V1ClusterRoleBinding;
        },
        deleteClusterRoleBinding: async ({ name }) => {
          requests.push(`delete ClusterRoleBinding ${name}`);
          if (!objects.delete(`ClusterRoleBinding ${name}`)) throw apiError(404);
          return {};
        },
      },
      apis: {
        getAPIVersions: async () => ({
          groups: (world.groups ?? ['apps', 'batch']).map((name) => ({ name, versions: [{ groupVersion: `${name}/v1`, version: 'v1' }] })),
        }),
      },
    },
    // The real applier, over a fake API server: what it reads and writes is what a cluster would see.
    applier: new Applier(objectApi),
    caches: {
      instances: cacheOf(current),
      images: cacheOf(...(world.images ?? [])),
      owned: Object.fromEntries(Object.entries(owned).map(([kind, objects]) => [kind, cacheOf(...objects)])),
    },
    log: silentLogger,
    onWrite: () => {},
    probe: async (target) => {
      probed.push(target);
      return world.probe ?? { ok: true };
    },
    storageStatus: async (target) => {
      storageAsked.push(target);
      return world.storageStatus;
    },
    now: () => NOW,
    nodeConfigNamespace: OPERATOR_NAMESPACE,
    ...(world.gates ? { gates: world.gates } : {}),
  });
  const status = () => statuses.at(-1) as NixeryInstanceStatus;
  const condition = (type: string) => {
    const c = getCondition(status().conditions, type);
    return c && `${c.status} ${c.reason}`;
  };
  return { reconcile: () => reconciler.reconcile(KEY), requests, statuses, events, status, condition, probed, storageAsked, applied, server };
}

describe('reconciling a NixeryInstance', () => {
  it('adds its cleanup finalizer first, so that a deletion waits for what it cannot own', async () => {
    const { reconcile, requests } = reconcilerFor(testInstance({}, { resourceVersion: '7' }));
    await reconcile();
    assert.equal(requests[0], `patch nixeryinstances/nixery finalizers=[${CLEANUP_FINALIZER}]`);
  });

  it('applies the policy, then the desired objects in order, then the auth-delegator binding, handing the applier what the cache holds', async () => {
    const { reconcile, requests } = reconcilerFor(instance, { owned: [deployment(0)] });
    await reconcile();
    assert.deepEqual(requests.filter((r) => r.startsWith('apply')), [
      'apply ConfigMap team-a/nixery-auth-policy',
      'apply ServiceAccount team-a/nixery',
      'apply PersistentVolumeClaim team-a/nixery-storage',
      'apply Service team-a/nixery',
      'apply Deployment team-a/nixery over the cached one',
      'apply PodDisruptionBudget team-a/nixery',
      'apply ClusterRoleBinding nixery.team-a.nixery.auth-delegator',
    ]);
  });

  it('is Ready only when the Deployment has ready replicas and /v2/ answers through the Service', async () => {
    const starting = reconcilerFor(instance, { owned: [deployment(0), service, pvc] });
    assert.deepEqual(await starting.reconcile(), { requeueAfterMs: 3000 });
    assert.deepEqual(starting.probed, [], 'no ready replica: nothing to ask yet');
    assert.equal(starting.condition('Ready'), 'False WaitingForPods');

    const silent = reconcilerFor(instance, { owned: [deployment(1), service, pvc], probe: { ok: false, error: 'GET failed: ECONNREFUSED' } });
    assert.deepEqual(await silent.reconcile(), { requeueAfterMs: 3000 });
    assert.equal(silent.condition('Ready'), 'False RegistryNotAnswering');
    assert.equal(silent.condition('Degraded'), 'True RegistryNotAnswering');

    const ready = reconcilerFor(instance, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await ready.reconcile(), {});
    assert.deepEqual(ready.probed, [{ url: 'http://10.0.0.7:5000/v2/' }]);
    assert.deepEqual(ready.requests.filter((r) => r.startsWith('patch')), ['patch nixeryinstances/nixery/status']);
    assert.equal(ready.condition('Ready'), 'True RegistryAnswering');
    assert.deepEqual(ready.events, ['Normal RegistryReady on NixeryInstance nixery: the registry answers at nixery.team-a.svc.cluster.local:5000']);
    assert.deepEqual(starting.events, [], 'pods starting is no news');
    assert.equal(ready.status().endpoint, 'nixery.team-a.svc.cluster.local:5000');
    assert.equal(getCondition(ready.status().conditions, 'TLSReady'), undefined, 'no TLS, no TLSReady');
  });

  it('shows the storage in use and the last garbage collection as the registry reports them, and keeps them when it cannot say', async () => {
    const answer = {
      lastGc: { finishedAt: '2026-12-07T10:00:00.123Z', result: 'ok', durationSeconds: 2.5, objectsSwept: 12, bytesFreed: 34567, imagesExpired: 2 },
      usage: { measuredAt: '2026-12-07T10:00:00.123Z', blobBytes: 1000, documentBytes: 24, totalBytes: 1024 },
    };
    const first = reconcilerFor(instance, { owned: [deployment(1), service, pvc], storageStatus: answer });
    await first.reconcile();
    assert.deepEqual(first.storageAsked, [{ url: 'http://10.0.0.7:5000/storage-status' }], 'asked through the Service, once /v2/ answered');
    assert.deepEqual(first.status().storage, {
      usedBytes: 1024,
      measuredAt: '2026-12-07T10:00:00Z',
      lastGarbageCollection: { finishedAt: '2026-12-07T10:00:00Z', result: 'Completed', objectsSwept: 12, bytesFreed: 34567, imagesExpired: 2 },
    });
    const unreadable = reconcilerFor({ ...instance, status: first.status() }, { owned: [deployment(1), service, pvc], storageStatus: '<html>' });
    await unreadable.reconcile();
    assert.deepEqual(unreadable.statuses, [], 'an answer of another shape changes nothing');
    const never = reconcilerFor(instance, { owned: [deployment(1), service, pvc], storageStatus: { lastGc: null, usage: null } });
    await never.reconcile();
    assert.deepEqual(never.status().storage, {}, 'no collection yet: nothing to show');
  });

  it('writes no status when the one it has is still true', async () => {
    const first = reconcilerFor(instance, { owned: [deployment(1), service, pvc] });
    await first.reconcile();
    const again = reconcilerFor({ ...instance, status: first.status() }, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await again.reconcile(), {});
    assert.deepEqual(again.statuses, []);
    assert.deepEqual(again.events, [], 'and records no Event: a resync is no news');
  });

  it('generates the push token, the token key and the pull user once, before the Deployment that mounts them', async () => {
    const fresh = reconcilerFor(instance, { secrets: [] });
    await fresh.reconcile();
    const creates = fresh.requests.filter((r) => r.startsWith('create Secret'));
    assert.deepEqual(creates, ['create Secret nixery-push-token', 'create Secret nixery-token-key', 'create Secret nixery-pull-user']);
    assert.ok(fresh.requests.indexOf(creates.at(-1)!) < fresh.requests.indexOf('apply Deployment team-a/nixery'));
    const key = Buffer.from(fresh.server.get('team-a/nixery-token-key')!.data!['key.pem']!, 'base64').toString();
    assert.match(key, /^-----BEGIN PRIVATE KEY-----/);
    const user = fresh.server.get('team-a/nixery-pull-user')!;
    assert.deepEqual(Object.keys(user.data!).sort(), ['htpasswd', 'password', 'username']);
    assert.equal(user.metadata!.ownerReferences![0]!.kind, 'NixeryInstance');

    const existing = reconcilerFor(instance);
    await existing.reconcile();
    assert.ok(!existing.requests.some((r) => r.startsWith('create Secret')));
    const raced = reconcilerFor(subject({ auth: { anonymousPull: true, pullSecretNamespaces: ['apps'] } }), {
      secrets: [],
      racedBy: { 'nixery-pull-user': { username: 'nixery-operator-pull', password: 'the-first-password', htpasswd: 'x' } },
    });
    await raced.reconcile();
    const config = Buffer.from((raced.applied.get('Secret apps/nixery-pull') as V1Secret).data!['.dockerconfigjson']!, 'base64').toString();
    assert.match(config, /the-first-password/, 'created meanwhile by an earlier run: that one holds');
  });

  it('says Degraded when a Secret the spec names does not exist: the GCS key, the S3 keys or the htpasswd file', async () => {
    const gcs = subject({ storage: { gcs: { bucket: 'images', credentialsSecret: { name: 'gcs-key', key: 'key.json' }, signedUrls: true } } });
    const withGcs = reconcilerFor(gcs, { owned: [deployment(0)] });
    await withGcs.reconcile();
    assert.equal(withGcs.condition('Degraded'), 'True SecretNotFound');
    assert.equal(getCondition(withGcs.status().conditions, 'Degraded')!.message, 'Secret gcs-key does not exist');
    const s3 = subject({ storage: { s3: { bucket: 'images', forcePathStyle: false, redirect: 'presigned', credentialsSecret: { name: 's3-keys', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' } } } });
    const withS3 = reconcilerFor(s3, { owned: [deployment(0)] });
    await withS3.reconcile();
    assert.equal(getCondition(withS3.status().conditions, 'Degraded')!.message, 'Secret s3-keys does not exist');
    const users = subject({ auth: { anonymousPull: false, htpasswdSecretRef: { name: 'users', key: 'htpasswd' } } });
    const withUsers = reconcilerFor(users, { owned: [deployment(0)] });
    await withUsers.reconcile();
    assert.equal(getCondition(withUsers.status().conditions, 'Degraded')!.message, 'Secret users does not exist');
  });

  it("grants the build ServiceAccount of each of its NixImages a push on that image's repository, and none to others", async () => {
    const images = [
      testImage({}, { name: 'toolbox' }),
      testImage({ name: 'apps/greeter', packages: ['hello'] }, { name: 'greeter' }),
      testImage({ instanceRef: { name: 'other' } }, { name: 'elsewhere' }),
      testImage({}, { name: 'leaving', deletionTimestamp: new Date(NOW) }),
      // Claims toolbox:v1 after toolbox did: it builds nothing, and gets nothing.
      testImage({ name: 'toolbox' }, { name: 'toolbox-copy', creationTimestamp: new Date('2026-02-01T00:00:00Z') }),
    ];
    const { reconcile, applied } = reconcilerFor(instance, { images });
    await reconcile();
    const policy = JSON.parse((applied.get('ConfigMap team-a/nixery-auth-policy') as { data: Record<string, string> }).data['policy.json']!);
    assert.deepEqual(policy.rules.filter((r: { serviceAccounts?: string[] }) => r.serviceAccounts), [
      { repositories: ['apps/greeter'], serviceAccounts: ['team-a/nixery-build-greeter'], actions: ['pull', 'push', 'delete'], overOnDemandNames: true },
      { repositories: ['toolbox'], serviceAccounts: ['team-a/nixery-build-toolbox'], actions: ['pull', 'push', 'delete'], overOnDemandNames: true },
    ]);
    assert.deepEqual(policy.rules.at(-1), { repositories: ['**'], users: ['nixery-operator-pull'], actions: ['pull'] });
  });

  it('keeps a pull Secret in each namespace the spec names, and removes it from namespaces dropped from the list', async () => {
    const labels = { 'app.kubernetes.io/instance': 'nixery', 'nixery.dev/instance-namespace': 'team-a', 'app.kubernetes.io/managed-by': 'nixery-operator' };
    const dropped = secret('old', 'nixery-pull', {}, labels);
    const otherInstance = secret('old2', 'nixery-pull', {}, { ...labels, 'nixery.dev/instance-namespace': 'team-b' });
    const kept = secret('apps', 'nixery-pull', {}, labels);
    const { reconcile, requests, applied } = reconcilerFor(subject({ auth: { anonymousPull: false, pullSecretNamespaces: ['apps', 'web'] } }), {
      owned: [dropped, otherInstance, kept],
      secrets: [...generated, dropped, otherInstance, kept],
    });
    await reconcile();
    assert.deepEqual(
      requests.filter((r) => r.includes('nixery-pull ') || r.endsWith('nixery-pull') || r.includes('nixery-pull over')),
      // web's is in no cache: read first, for it may be someone else's.
      ['apply Secret apps/nixery-pull over the cached one', 'read Secret web/nixery-pull', 'apply Secret web/nixery-pull', 'delete Secret old/nixery-pull'],
    );
    const config = JSON.parse(Buffer.from((applied.get('Secret web/nixery-pull') as V1Secret).data!['.dockerconfigjson']!, 'base64').toString());
    assert.deepEqual(config.auths['nixery.team-a.svc.cluster.local:5000'], {
      username: 'nixery-operator-pull',
      password: 'pull-password',
      auth: b64('nixery-operator-pull:pull-password'),
    });
  });

  describe('with self-signed TLS', () => {
    const selfSigned = subject({ tls: { selfSigned: {} } });

    it('makes a CA and a serving certificate, publishes the CA, and probes over HTTPS trusting it by the name pods pull', async () => {
      const { reconcile, applied, server, status, condition, probed } = reconcilerFor(selfSigned, { owned: [deployment(1), service, pvc] });
      const result = await reconcile();
      const ca = server.get('team-a/nixery-ca')!;
      const serving = server.get('team-a/nixery-tls')!;
      assert.equal(ca.type, 'kubernetes.io/tls');
      assert.equal(serving.type, 'kubernetes.io/tls');
      const pem = (s: V1Secret, key: string) => Buffer.from(s.data![key]!, 'base64').toString();
      assert.equal(pem(serving, 'ca.crt'), pem(ca, 'tls.crt'));
      const cert = new X509Certificate(pem(serving, 'tls.crt'));
      assert.ok(cert.checkIssued(new X509Certificate(pem(ca, 'tls.crt'))));
      assert.match(cert.subjectAltName!, /DNS:nixery\.team-a\.svc\.cluster\.local, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:10\.0\.0\.7$/, 'the ClusterIP too');
      assert.deepEqual((applied.get('ConfigMap team-a/nixery-ca-bundle') as { data: Record<string, string> }).data, { 'ca.crt': pem(ca, 'tls.crt') });
      assert.deepEqual(status().tls, { caBundle: pem(ca, 'tls.crt'), caConfigMap: 'nixery-ca-bundle', secretName: 'nixery-tls' });
      assert.equal(condition('TLSReady'), 'True CertificateReady');
      assert.equal(condition('Ready'), 'True RegistryAnswering');
      assert.deepEqual(probed, [{ url: 'https://10.0.0.7:5000/v2/', ca: pem(ca, 'tls.crt'), servername: 'nixery.team-a.svc.cluster.local' }]);
      assert.deepEqual(result, { requeueAfterMs: 12 * 3_600_000 }, 'a renewal months away: looked at again twice a day');
    });

    it('keeps a current certificate: nothing is written again', async () => {
      const ca = await createCertificateAuthority('ca', new Date(NOW));
      const serving = await issueServingCertificate(ca, servingNames(selfSigned, '10.0.0.7'), new Date(NOW));
      const secrets = [
        ...generated,
        ours(secret('team-a', 'nixery-ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem })),
        ours(secret('team-a', 'nixery-tls', { 'tls.crt': serving.certPem, 'tls.key': serving.keyPem, 'ca.crt': ca.certPem })),
      ];
      const { reconcile, requests } = reconcilerFor(selfSigned, { secrets, owned: [deployment(1), service, pvc] });
      await reconcile();
      assert.ok(!requests.some((r) => r.startsWith('apply Secret')), requests.join('\n'));
    });

    it('renews a certificate made before the Service had its ClusterIP', async () => {
      const ca = await createCertificateAuthority('ca', new Date(NOW));
      const early = await issueServingCertificate(ca, servingNames(selfSigned), new Date(NOW));
      const secrets = [
        ...generated,
        ours(secret('team-a', 'nixery-ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem })),
        ours(secret('team-a', 'nixery-tls', { 'tls.crt': early.certPem, 'tls.key': early.keyPem, 'ca.crt': ca.certPem })),
      ];
      const { reconcile, requests, server } = reconcilerFor(selfSigned, { secrets, owned: [service] });
      await reconcile();
      assert.deepEqual(requests.filter((r) => r.startsWith('apply Secret')), ['apply Secret team-a/nixery-tls']);
      const renewed = new X509Certificate(Buffer.from(server.get('team-a/nixery-tls')!.data!['tls.crt']!, 'base64').toString());
      assert.match(renewed.subjectAltName!, /IP Address:10\.0\.0\.7$/);
    });

    it('renews a certificate for other names with the same CA', async () => {
      const ca = await createCertificateAuthority('ca', new Date(NOW));
      const old = await issueServingCertificate(ca, servingNames(testInstance({}, { name: 'renamed' })), new Date(NOW));
      const secrets = [
        ...generated,
        ours(secret('team-a', 'nixery-ca', { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem })),
        ours(secret('team-a', 'nixery-tls', { 'tls.crt': old.certPem, 'tls.key': old.keyPem, 'ca.crt': ca.certPem })),
      ];
      const { reconcile, requests, server } = reconcilerFor(selfSigned, { secrets });
      await reconcile();
      assert.deepEqual(requests.filter((r) => r.startsWith('apply Secret')), ['apply Secret team-a/nixery-tls']);
      const renewed = new X509Certificate(Buffer.from(server.get('team-a/nixery-tls')!.data!['tls.crt']!, 'base64').toString());
      assert.ok(renewed.checkIssued(new X509Certificate(ca.certPem)));
      assert.match(renewed.subjectAltName!, /DNS:nixery\.team-a\.svc/);
    });
  });

  describe('with a TLS Secret of its own', () => {
    const own = subject({ tls: { secretName: 'my-cert' } });

    it('says TLSReady False and Degraded while the Secret is missing, and probes nothing', async () => {
      const { reconcile, condition, status, probed } = reconcilerFor(own, { owned: [deployment(1), service, pvc] });
      await reconcile();
      assert.equal(condition('TLSReady'), 'False SecretNotFound');
      assert.equal(condition('Degraded'), 'True SecretNotFound');
      assert.equal(condition('Ready'), 'False SecretNotFound');
      assert.deepEqual(status().tls, { secretName: 'my-cert' });
      assert.deepEqual(probed, []);
    });

    it("serves it and publishes its ca.crt (else its chain), and says so when it holds no key pair", async () => {
      const withCa = reconcilerFor(own, { secrets: [...generated, secret('team-a', 'my-cert', { 'tls.crt': '-----BEGIN CERTIFICATE-----\nLEAF', 'tls.key': 'K', 'ca.crt': '-----BEGIN CERTIFICATE-----\nCA' })] });
      await withCa.reconcile();
      assert.equal(withCa.condition('TLSReady'), 'True CertificateReady');
      assert.equal(withCa.status().tls!.caBundle, '-----BEGIN CERTIFICATE-----\nCA');
      const chain = reconcilerFor(own, { secrets: [...generated, secret('team-a', 'my-cert', { 'tls.crt': '-----BEGIN CERTIFICATE-----\nLEAF', 'tls.key': 'K' })] });
      await chain.reconcile();
      assert.equal(chain.status().tls!.caBundle, '-----BEGIN CERTIFICATE-----\nLEAF');
      const opaque = reconcilerFor(own, { secrets: [...generated, secret('team-a', 'my-cert', { password: 'x' })] });
      await opaque.reconcile();
      assert.equal(opaque.condition('TLSReady'), 'False SecretInvalid');
    });
  });

  describe('with a cert-manager issuer', () => {
    const issued = subject({ tls: { issuerRef: { name: 'ca-issuer', kind: 'Issuer', group: 'cert-manager.io' } } });

    it('says cert-manager is not installed when its API is not served, and makes no Certificate', async () => {
      const { reconcile, condition, requests } = reconcilerFor(issued);
      await reconcile();
      assert.equal(condition('TLSReady'), 'False CertManagerNotInstalled');
      assert.equal(condition('Degraded'), 'True CertManagerNotInstalled');
      assert.ok(!requests.some((r) => r.includes('Certificate')));
    });

    it('applies a Certificate and waits for cert-manager without calling that Degraded, then serves what it issued', async () => {
      const waiting = reconcilerFor(issued, { groups: ['cert-manager.io'] });
      await waiting.reconcile();
      assert.ok(waiting.requests.includes('apply Certificate team-a/nixery-tls'));
      assert.equal(waiting.condition('TLSReady'), 'False CertificateIssuing');
      assert.equal(waiting.condition('Degraded'), 'False AsExpected');
      assert.equal(waiting.condition('Ready'), 'False CertificateIssuing');

      const certificate = ours({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'nixery-tls', namespace: 'team-a' } });
      const done = reconcilerFor(issued, {
        groups: ['cert-manager.io'],
        certificate,
        secrets: [...generated, secret('team-a', 'nixery-tls', { 'tls.crt': '-----BEGIN CERTIFICATE-----\nLEAF', 'tls.key': 'K', 'ca.crt': '-----BEGIN CERTIFICATE-----\nCA' })],
      });
      await done.reconcile();
      assert.ok(done.requests.includes('apply Certificate team-a/nixery-tls over the cached one'));
      assert.equal(done.condition('TLSReady'), 'True CertificateReady');
    });
  });

  it('nulls what status.tls no longer holds in the merge patch, so the next reconcile finds nothing to write', async () => {
    const before: NixeryInstanceStatus = { tls: { secretName: 'my-cert', caBundle: 'PEM', caConfigMap: 'nixery-ca-bundle' } };
    const { reconcile, statuses } = reconcilerFor({ ...subject({ tls: { secretName: 'my-cert' } }), status: before });
    await reconcile();
    assert.deepEqual(statuses[0]!.tls, { secretName: 'my-cert', caBundle: null, caConfigMap: null }, 'the Secret went: nothing to trust any more');
  });

  it('writes the pull Secrets of the namespaces that exist, and leaves a missing namespace for later', async () => {
    const { reconcile, requests } = reconcilerFor(subject({ auth: { anonymousPull: true, pullSecretNamespaces: ['gone', 'web'] } }), {
      applyFails: { 'Secret gone/nixery-pull': 404 },
    });
    await reconcile();
    assert.ok(requests.includes('apply Secret web/nixery-pull'));
    assert.ok(requests.includes('patch nixeryinstances/nixery/status'), 'the status is still written');
  });

  it('removes status.tls and TLSReady when TLS is turned off (null in the merge patch)', async () => {
    const before: NixeryInstanceStatus = { tls: { secretName: 'nixery-tls', caBundle: 'PEM' }, conditions: [{ type: 'TLSReady', status: 'True', reason: 'CertificateReady' }] };
    const { reconcile, statuses } = reconcilerFor({ ...instance, status: before });
    await reconcile();
    assert.equal(statuses[0]!.tls, null);
    assert.equal(getCondition(statuses[0]!.conditions as NixeryInstanceStatus['conditions'], 'TLSReady'), undefined);
  });
});

describe('objects of its names that are not the instance’s', () => {
  /** A user's own Deployment that happens to bear the instance's name: no labels of ours, no owner. */
  const unrelated: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'nixery', namespace: 'team-a', uid: 'theirs', resourceVersion: '41', labels: { app: 'web' } },
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
  };
  const writesTo = (requests: string[], key: string) => requests.filter((r) => r.startsWith(`apply ${key}`) || r.startsWith(`create ${key}`));

  it('leaves a Deployment of its name alone, applies nothing after it, and says Conflict naming it', async () => {
    const { reconcile, requests, condition, status, events } = reconcilerFor(instance, { others: [unrelated] });
    assert.deepEqual(await reconcile(), { requeueAfterMs: 3000 }, 'looked at again: the Deployment may go');
    assert.equal(events.length, 1);
    assert.match(events[0]!, /^Warning Conflict on NixeryInstance nixery: Deployment nixery exists and is not this NixeryInstance's/, 'kubectl describe tells it too');
    assert.ok(requests.includes('read Deployment team-a/nixery'), 'asked the API server, which shows what the caches do not');
    assert.deepEqual(writesTo(requests, 'Deployment'), []);
    assert.ok(!requests.some((r) => r.startsWith('apply ClusterRoleBinding')), 'nothing after the conflict');
    assert.equal(condition('Ready'), 'False Conflict');
    assert.equal(condition('Degraded'), 'True Conflict');
    const message = getCondition(status().conditions, 'Ready')!.message!;
    assert.match(message, /^Deployment nixery exists and is not this NixeryInstance's \(it has no controller reference to NixeryInstance nixery\)/);
    assert.equal(getCondition(status().conditions, 'Degraded')!.message, message);
  });

  it('does not inherit a Deployment of an earlier instance of the same name (another UID)', async () => {
    const leftover = { ...deployment(1), metadata: { ...deployment(1).metadata, ownerReferences: [{ ...byInstance[0]!, uid: 'uid-0' }] } };
    const { reconcile, requests, condition } = reconcilerFor(instance, { owned: [leftover, service, pvc] });
    await reconcile();
    assert.deepEqual(writesTo(requests, 'Deployment'), []);
    assert.equal(condition('Ready'), 'False Conflict');
  });

  it('proceeds once the Deployment is gone, or carries its controller reference, and becomes Ready', async () => {
    const conflicted = reconcilerFor(instance, { others: [unrelated] });
    await conflicted.reconcile();
    const gone = reconcilerFor({ ...instance, status: conflicted.status() });
    await gone.reconcile();
    assert.deepEqual(writesTo(gone.requests, 'Deployment'), ['apply Deployment team-a/nixery']);
    assert.equal(gone.condition('Ready'), 'False WaitingForPods');
    assert.equal(gone.condition('Degraded'), 'False AsExpected');

    const given = reconcilerFor({ ...instance, status: conflicted.status() }, { others: [ours(unrelated)] });
    await given.reconcile();
    assert.deepEqual(writesTo(given.requests, 'Deployment'), ['apply Deployment team-a/nixery']);

    const running = reconcilerFor({ ...instance, status: gone.status() }, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await running.reconcile(), {});
    assert.equal(running.condition('Ready'), 'True RegistryAnswering');
  });

  for (const name of ['nixery-push-token', 'nixery-token-key', 'nixery-pull-user']) {
    it(`does not adopt a Secret ${name} it did not make: no write, no Deployment mounting it, Conflict naming it`, async () => {
      const planted = secret('team-a', name, { token: 'known-to-someone', 'key.pem': 'THEIRS', username: 'them', password: 'p', htpasswd: 'them:x' });
      const secrets = [...generated.filter((s) => s.metadata!.name !== name), planted];
      const { reconcile, requests, server, condition, status } = reconcilerFor(instance, { secrets, owned: [service, pvc] });
      await reconcile();
      assert.deepEqual(writesTo(requests, 'Secret'), []);
      assert.deepEqual(writesTo(requests, 'Deployment'), [], 'no registry mounts it');
      assert.equal(server.get(`team-a/${name}`), planted);
      assert.equal(condition('Ready'), 'False Conflict');
      assert.match(getCondition(status().conditions, 'Ready')!.message!, new RegExp(`^Secret ${name} exists and is not this NixeryInstance's`));
    });
  }

  it('does not adopt a Secret someone else created between its read and its create (409)', async () => {
    const { reconcile, requests, condition } = reconcilerFor(instance, { secrets: [], racedBy: { 'nixery-push-token': { token: 'known-to-someone' } }, racedByOthers: true });
    await reconcile();
    assert.deepEqual(writesTo(requests, 'Secret'), ['create Secret nixery-push-token'], 'the create that answered 409, and nothing after it');
    assert.equal(condition('Ready'), 'False Conflict');
  });

  it('leaves a ClusterRoleBinding of its name without its labels alone', async () => {
    const binding = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'nixery.team-a.nixery.auth-delegator', labels: { team: 'b' } } };
    const { reconcile, requests, status } = reconcilerFor(instance, { others: [binding] });
    await reconcile();
    assert.deepEqual(writesTo(requests, 'ClusterRoleBinding'), []);
    assert.match(getCondition(status().conditions, 'Ready')!.message!, /^ClusterRoleBinding nixery\.team-a\.nixery\.auth-delegator exists and is not this NixeryInstance's \(it lacks the labels /);
  });

  it('leaves a pull Secret of its name in another namespace alone unless it carries the instance’s labels', async () => {
    const spec = { auth: { anonymousPull: true, pullSecretNamespaces: ['apps'] } };
    const foreign = secret('apps', 'nixery-pull', { '.dockerconfigjson': '{}' }, { 'app.kubernetes.io/instance': 'nixery' });
    const refused = reconcilerFor(subject(spec), { secrets: [...generated, foreign] });
    await refused.reconcile();
    assert.deepEqual(writesTo(refused.requests, 'Secret apps/'), []);
    assert.match(getCondition(refused.status().conditions, 'Ready')!.message!, /^Secret apps\/nixery-pull exists and is not this NixeryInstance's \(it lacks the labels app\.kubernetes\.io\/managed-by=nixery-operator, nixery\.dev\/instance-namespace=team-a\)/);

    const labelled = { ...foreign, metadata: { ...foreign.metadata, labels: { 'app.kubernetes.io/instance': 'nixery', 'nixery.dev/instance-namespace': 'team-a', 'app.kubernetes.io/managed-by': 'nixery-operator' } } };
    const kept = reconcilerFor(subject(spec), { secrets: [...generated, labelled] });
    await kept.reconcile();
    assert.deepEqual(writesTo(kept.requests, 'Secret apps/'), ['apply Secret apps/nixery-pull']);
  });

  it('keeps what earlier operator versions made (owner references, labels), and a resync of it asks the API server nothing', async () => {
    const spec = { auth: { anonymousPull: true, pullSecretNamespaces: ['apps'] } };
    const first = reconcilerFor(subject(spec));
    await first.reconcile();
    const made = [...first.applied.values()].map((o) => (o.kind === 'Deployment' ? { ...o, status: { observedGeneration: 1, readyReplicas: 1, updatedReplicas: 1 } } : o.kind === 'Service' ? { ...o, spec: { ...(o as V1Service).spec, clusterIP: '10.0.0.7' } } : o));
    const secrets = [...generated, ...made.filter((o): o is V1Secret => o.kind === 'Secret')];
    const resync = reconcilerFor(subject(spec), { owned: [...made, ...generated], secrets });
    await resync.reconcile();
    assert.deepEqual(resync.requests.filter((r) => !r.startsWith('patch nixeryinstances/nixery/status')), []);
    assert.equal(resync.condition('Ready'), 'True RegistryAnswering');
  });
});

describe('deleting a NixeryInstance', () => {
  it('removes its ClusterRoleBinding and its pull Secrets, then its finalizer; the rest goes with owner references', async () => {
    const deleting = subject({ auth: { anonymousPull: true, pullSecretNamespaces: ['apps'] } }, { deletionTimestamp: new Date(NOW), finalizers: ['example.com/keep', CLEANUP_FINALIZER] });
    const labels = unownedLabels(deleting, 'pull-secret');
    const leftover = secret('old', 'nixery-pull', {}, labels);
    const { reconcile, requests } = reconcilerFor(deleting, { owned: [leftover, desiredAuthDelegatorBinding(deleting)], secrets: [leftover, secret('apps', 'nixery-pull', {}, labels)] });
    assert.deepEqual(await reconcile(), {});
    assert.deepEqual(requests, [
      'delete ClusterRoleBinding nixery.team-a.nixery.auth-delegator',
      'delete Secret apps/nixery-pull',
      'delete Secret old/nixery-pull',
      'patch nixeryinstances/nixery finalizers=[example.com/keep]',
    ]);
  });

  it("leaves a same-named ClusterRoleBinding or pull Secret of someone else's alone, and still lets the instance go", async () => {
    const deleting = subject({ auth: { anonymousPull: true, pullSecretNamespaces: ['apps'] } }, { deletionTimestamp: new Date(NOW), finalizers: [CLEANUP_FINALIZER] });
    const theirBinding = { ...desiredAuthDelegatorBinding(deleting), metadata: { name: 'nixery.team-a.nixery.auth-delegator', labels: { team: 'platform' } } };
    const { reconcile, requests } = reconcilerFor(deleting, { others: [theirBinding], secrets: [secret('apps', 'nixery-pull', {}, { team: 'apps' })] });
    assert.deepEqual(await reconcile(), {});
    assert.deepEqual(requests, ['patch nixeryinstances/nixery finalizers=[]']);
  });

  it('is left to the garbage collector once its finalizer is gone', async () => {
    const deleting = reconcilerFor(subject({}, { deletionTimestamp: new Date(NOW), finalizers: [] }));
    assert.deepEqual(await deleting.reconcile(), {});
    assert.deepEqual(deleting.requests, []);
  });
});

describe('the registry probe', () => {
  it('asks /v2/ over HTTPS trusting the given CA and checking the given name, and takes a registry’s 401 as an answer', async (t) => {
    const now = new Date();
    const ca = await createCertificateAuthority('probe CA', now);
    const pair = await issueServingCertificate(ca, servingNames(instance), now);
    let status = 401;
    const server = https.createServer({ cert: pair.certPem, key: pair.keyPem }, (_req, res) => {
      res.writeHead(status, { 'Docker-Distribution-API-Version': 'registry/2.0' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`;
    assert.deepEqual(await probeRegistry({ url, ca: ca.certPem, servername: 'nixery.team-a.svc.cluster.local' }), { ok: true });
    const wrongName = await probeRegistry({ url, ca: ca.certPem, servername: 'nixery.team-b.svc.cluster.local' });
    assert.equal(wrongName.ok, false);
    assert.match(wrongName.error!, /altnames/);
    const untrusted = await probeRegistry({ url, servername: 'nixery.team-a.svc.cluster.local' });
    assert.equal(untrusted.ok, false);
    status = 503;
    assert.deepEqual(await probeRegistry({ url, ca: ca.certPem, servername: 'nixery.team-a.svc.cluster.local' }), { ok: false, error: `GET ${url} answered 503` });
  });
});

describe("reconciling a NixeryInstance: the operator's privilege gates", () => {
  const edge = subject({ nodeLocal: { enabled: true, hostPort: 5000 } });
  const daemonSet = (ownerReferences: typeof byInstance | undefined) => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'nixery-node-local', namespace: 'team-a', uid: 'ds-uid', ...(ownerReferences ? { ownerReferences } : {}) },
    status: { desiredNumberScheduled: 2, numberReady: 2 },
  });
  const applies = (requests: string[], kind: string) => requests.filter((r) => r.startsWith(`apply ${kind} `));

  it('makes no node-local DaemonSet without --allow-node-local, and says so, while the registry still becomes Ready', async () => {
    const { reconcile, requests, condition, status } = reconcilerFor(edge, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await reconcile(), {}, 'Ready: nothing to look at again soon');
    assert.deepEqual(applies(requests, 'DaemonSet'), []);
    assert.deepEqual(applies(requests, 'Deployment'), ['apply Deployment team-a/nixery over the cached one']);
    assert.equal(condition('Ready'), 'True RegistryAnswering');
    assert.equal(condition('NodeLocalReady'), 'False NotAllowed');
    assert.equal(condition('Degraded'), 'True NotAllowed');
    assert.match(getCondition(status().conditions, 'NodeLocalReady')!.message!, /--allow-node-local \(the chart's operator\.allowNodeLocal\)/);
  });

  it('deletes the node-local DaemonSet it made while it was allowed, by its UID, and only its own', async () => {
    const mine = reconcilerFor(edge, { owned: [deployment(1), service, pvc, daemonSet(byInstance)] });
    await mine.reconcile();
    assert.deepEqual(mine.requests.filter((r) => r.startsWith('delete DaemonSet')), ['delete DaemonSet team-a/nixery-node-local uid=ds-uid']);

    const theirs = reconcilerFor(edge, { owned: [deployment(1), service, pvc, daemonSet([{ ...byInstance[0]!, uid: 'uid-0' }])] });
    await theirs.reconcile();
    assert.deepEqual(theirs.requests.filter((r) => r.startsWith('delete')), []);
  });

  it('deletes its node-local DaemonSet once spec.nodeLocal is off, even where node-local is allowed, and only its own', async () => {
    const allowed = { allowNodeLocal: true, allowedRegistryImages: ['ghcr.io/nixery-operator/nixery:*'] };
    const off = subject({ nodeLocal: { enabled: false, hostPort: 5000 } });
    const mine = reconcilerFor(off, { owned: [deployment(1), service, pvc, daemonSet(byInstance)], gates: allowed });
    await mine.reconcile();
    assert.deepEqual(mine.requests.filter((r) => r.startsWith('delete DaemonSet')), ['delete DaemonSet team-a/nixery-node-local uid=ds-uid']);
    assert.equal(mine.condition('NodeLocalReady'), undefined);

    const theirs = reconcilerFor(off, { owned: [deployment(1), service, pvc, daemonSet(undefined)], gates: allowed });
    await theirs.reconcile();
    assert.deepEqual(theirs.requests.filter((r) => r.startsWith('delete')), []);
  });

  it('applies the DaemonSet with --allow-node-local, and NodeLocalReady follows its pods', async () => {
    const allowed = { allowNodeLocal: true, allowedRegistryImages: ['ghcr.io/nixery-operator/nixery:*'] };
    const first = reconcilerFor(edge, { owned: [deployment(1), service, pvc], gates: allowed });
    await first.reconcile();
    assert.deepEqual(applies(first.requests, 'DaemonSet'), ['apply DaemonSet team-a/nixery-node-local']);
    assert.equal(first.condition('NodeLocalReady'), 'False WaitingForPods');
    assert.equal(first.condition('Degraded'), 'False AsExpected');

    const running = reconcilerFor(edge, { owned: [deployment(1), service, pvc, daemonSet(byInstance)], gates: allowed });
    await running.reconcile();
    assert.equal(running.condition('NodeLocalReady'), 'True Forwarding');
    assert.deepEqual(running.requests.filter((r) => r.startsWith('delete')), []);
  });

  it('runs no registry of an image off the allow-list: no Deployment, no DaemonSet, Ready=False ImageNotAllowed naming it', async () => {
    const foreign = subject({ image: 'example.com/miner:1', nodeLocal: { enabled: true, hostPort: 5000 } });
    const { reconcile, requests, condition, status } = reconcilerFor(foreign, { owned: [service, pvc], gates: { allowNodeLocal: true, allowedRegistryImages: ['ghcr.io/nixery-operator/nixery:*'] } });
    assert.deepEqual(await reconcile(), { requeueAfterMs: 3000 });
    assert.deepEqual([...applies(requests, 'Deployment'), ...applies(requests, 'DaemonSet')], []);
    assert.deepEqual(applies(requests, 'Service'), ['apply Service team-a/nixery over the cached one'], 'what runs no image is still kept');
    assert.equal(condition('Ready'), 'False ImageNotAllowed');
    assert.equal(condition('Degraded'), 'True ImageNotAllowed');
    assert.equal(
      getCondition(status().conditions, 'Ready')!.message,
      "spec.image example.com/miner:1 is not allowed by the operator (--allowed-registry-images=ghcr.io/nixery-operator/nixery:*; the chart's operator.allowedRegistryImages): no registry runs it",
    );
  });

  it('keeps a Deployment from before, of an allowed image, untouched when spec.image leaves the allow-list', async () => {
    const { reconcile, requests, condition } = reconcilerFor(subject({ image: 'example.com/miner:1' }), { owned: [deployment(1), service, pvc] });
    await reconcile();
    assert.deepEqual(applies(requests, 'Deployment'), []);
    assert.equal(condition('Ready'), 'False ImageNotAllowed');
  });

  it('allows the default image and its repository without flags', async () => {
    const pinned = reconcilerFor(subject({ image: 'ghcr.io/nixery-operator/nixery@sha256:0123' }), { owned: [deployment(1), service, pvc] });
    await pinned.reconcile();
    assert.equal(pinned.condition('Ready'), 'True RegistryAnswering');
    assert.equal(applies(pinned.requests, 'Deployment').length, 1);
  });
});

describe("reconciling a NixeryInstance: spec.nodeConfig and --allow-node-config", () => {
  const configured = subject({ nodeConfig: { enabled: true } });
  const allowed = { allowNodeLocal: false, allowNodeConfig: true, allowedRegistryImages: ['ghcr.io/nixery-operator/nixery:*'] };
  const NAME = nodeConfigName('team-a', 'nixery');
  const CA = nodeConfigCaName('team-a', 'nixery');
  /** Labelled as the instance's (identity labels), someone else's (`labels` given), or none. */
  const daemonSet = (labels: Record<string, string> | undefined, ready = 2) => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: NAME, namespace: OPERATOR_NAMESPACE, uid: 'nc-uid', ...(labels ? { labels } : {}) },
    status: { desiredNumberScheduled: 2, numberReady: ready },
  });
  const mine = unownedLabels(configured, 'node-config');
  const caCopy = (labels: Record<string, string> = mine) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CA, namespace: OPERATOR_NAMESPACE, uid: 'ca-uid', labels }, data: { 'ca.crt': 'PEM' } });
  const applies = (requests: string[]) => requests.filter((r) => r.startsWith('apply DaemonSet ') || r.startsWith(`apply ConfigMap ${OPERATOR_NAMESPACE}/`));
  const deletes = (requests: string[]) => requests.filter((r) => r.startsWith('delete'));

  it('without the flag: no DaemonSet, NodeConfigReady=False and Degraded=True NotAllowed naming it, Ready untouched', async () => {
    const { reconcile, requests, condition, status } = reconcilerFor(configured, { owned: [deployment(1), service, pvc] });
    await reconcile();
    assert.deepEqual(applies(requests), []);
    assert.equal(condition('Ready'), 'True RegistryAnswering');
    assert.equal(condition('NodeConfigReady'), 'False NotAllowed');
    assert.equal(condition('Degraded'), 'True NotAllowed');
    assert.match(getCondition(status().conditions, 'NodeConfigReady')!.message!, /--allow-node-config \(the chart's operator\.allowNodeConfig\)/);
  });

  it('refused, it deletes the DaemonSet and CA copy it made while allowed, by UID, and only its own', async () => {
    const refused = reconcilerFor(configured, { owned: [deployment(1), service, pvc, daemonSet(mine), caCopy()] });
    await refused.reconcile();
    assert.deepEqual(deletes(refused.requests), [`delete DaemonSet ${OPERATOR_NAMESPACE}/${NAME} uid=nc-uid`, `delete ConfigMap ${OPERATOR_NAMESPACE}/${CA} uid=ca-uid`]);
    const theirs = reconcilerFor(configured, { owned: [deployment(1), service, pvc, daemonSet({ ...mine, 'nixery.dev/instance-namespace': 'team-b' }), caCopy({ ...mine, 'app.kubernetes.io/instance': 'other' })] });
    await theirs.reconcile();
    assert.deepEqual(deletes(theirs.requests), []);
  });

  it('turned off, it deletes its DaemonSet (its pods remove their files) and CA copy, and the condition goes', async () => {
    const off = subject({ nodeConfig: { enabled: false } });
    const turnedOff = reconcilerFor(off, { owned: [deployment(1), service, pvc, daemonSet(mine), caCopy()], gates: allowed });
    await turnedOff.reconcile();
    assert.deepEqual(deletes(turnedOff.requests), [`delete DaemonSet ${OPERATOR_NAMESPACE}/${NAME} uid=nc-uid`, `delete ConfigMap ${OPERATOR_NAMESPACE}/${CA} uid=ca-uid`]);
    assert.equal(turnedOff.condition('NodeConfigReady'), undefined);
    const theirs = reconcilerFor(off, { owned: [deployment(1), service, pvc, daemonSet({ ...mine, 'app.kubernetes.io/managed-by': 'someone' })], gates: allowed });
    await theirs.reconcile();
    assert.deepEqual(deletes(theirs.requests), []);
  });

  it("allowed: applies the DaemonSet in the operator's namespace (none in the instance's), and NodeConfigReady follows its pods", async () => {
    const first = reconcilerFor(configured, { owned: [deployment(1), service, pvc], gates: allowed });
    await first.reconcile();
    assert.deepEqual(applies(first.requests), [`apply DaemonSet ${OPERATOR_NAMESPACE}/${NAME}`]);
    const applied = first.applied.get(`DaemonSet ${OPERATOR_NAMESPACE}/${NAME}`)!;
    assert.equal(applied.metadata!.ownerReferences, undefined);
    assert.deepEqual(applied.metadata!.labels, { ...mine, 'app.kubernetes.io/name': 'nixery-node-config' });
    assert.equal(first.condition('NodeConfigReady'), 'False WaitingForNodes');
    assert.equal(first.condition('Degraded'), 'False AsExpected');

    const partly = reconcilerFor(configured, { owned: [deployment(1), service, pvc, daemonSet(mine, 1)], gates: allowed });
    await partly.reconcile();
    assert.equal(partly.condition('NodeConfigReady'), 'False WaitingForNodes');
    assert.match(
      getCondition(partly.status().conditions, 'NodeConfigReady')!.message!,
      /^1 of 2 nodes configured; .*kubectl logs -n nixery-system -l app\.kubernetes\.io\/name=nixery-node-config,app\.kubernetes\.io\/instance=nixery,nixery\.dev\/instance-namespace=team-a\).*config_path/,
    );

    const running = reconcilerFor(configured, { owned: [deployment(1), service, pvc, daemonSet(mine)], gates: allowed });
    await running.reconcile();
    assert.equal(running.condition('NodeConfigReady'), 'True Configured');
    assert.deepEqual(deletes(running.requests), []);
    assert.deepEqual(applies(running.requests), [`apply DaemonSet ${OPERATOR_NAMESPACE}/${NAME} over the cached one`]);
  });

  it('with TLS: copies the CA bundle beside the DaemonSet before it, and keeps the copy current', async () => {
    const secure = subject({ tls: { selfSigned: {} }, nodeConfig: { enabled: true } });
    const { reconcile, requests, applied } = reconcilerFor(secure, { owned: [deployment(1), service, pvc], gates: allowed });
    await reconcile();
    assert.deepEqual(applies(requests), [`apply ConfigMap ${OPERATOR_NAMESPACE}/${CA}`, `apply DaemonSet ${OPERATOR_NAMESPACE}/${NAME}`]);
    const original = applied.get('ConfigMap team-a/nixery-ca-bundle') as { data: Record<string, string> };
    const copy = applied.get(`ConfigMap ${OPERATOR_NAMESPACE}/${CA}`) as KubernetesObject & { data: Record<string, string> };
    assert.match(copy.data['ca.crt']!, /^-----BEGIN CERTIFICATE-----/);
    assert.deepEqual(copy.data, original.data);
    assert.equal(copy.metadata!.ownerReferences, undefined);
    assert.deepEqual(copy.metadata!.labels, unownedLabels(secure, 'node-config'));
    // A stale copy (the CA was replaced) is applied over.
    const stale = reconcilerFor(secure, { owned: [deployment(1), service, pvc, caCopy()], gates: allowed });
    await stale.reconcile();
    assert.ok(stale.requests.includes(`apply ConfigMap ${OPERATOR_NAMESPACE}/${CA} over the cached one`));
    // TLS turned off: the copy goes, the DaemonSet stays.
    const plain = reconcilerFor(configured, { owned: [deployment(1), service, pvc, daemonSet(mine), caCopy()], gates: allowed });
    await plain.reconcile();
    assert.deepEqual(deletes(plain.requests), [`delete ConfigMap ${OPERATOR_NAMESPACE}/${CA} uid=ca-uid`]);
  });

  it("leaves a same-named DaemonSet of someone else's in the operator's namespace untouched: a Conflict", async () => {
    const foreign = daemonSet(undefined);
    const { reconcile, requests, condition, status } = reconcilerFor(configured, { owned: [deployment(1), service, pvc], others: [foreign], gates: allowed });
    await reconcile();
    assert.ok(requests.includes(`read DaemonSet ${OPERATOR_NAMESPACE}/${NAME}`));
    assert.deepEqual(applies(requests), []);
    assert.deepEqual(deletes(requests), []);
    assert.equal(condition('Degraded'), 'True Conflict');
    assert.match(getCondition(status().conditions, 'Degraded')!.message!, new RegExp(`^DaemonSet ${OPERATOR_NAMESPACE}/${NAME} exists and is not this NixeryInstance's`));
  });

  it('removes the DaemonSet it made in the instance namespace before the move, only its own', async () => {
    const legacy = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'nixery-node-config', namespace: 'team-a', uid: 'old-uid', ownerReferences: byInstance } };
    const moved = reconcilerFor(configured, { owned: [deployment(1), service, pvc, legacy], gates: allowed });
    await moved.reconcile();
    assert.deepEqual(deletes(moved.requests), ['delete DaemonSet team-a/nixery-node-config uid=old-uid']);
    const theirs = reconcilerFor(configured, { owned: [deployment(1), service, pvc, { ...legacy, metadata: { ...legacy.metadata, ownerReferences: undefined } }], gates: allowed });
    await theirs.reconcile();
    assert.deepEqual(deletes(theirs.requests), []);
  });

  it('waits for the Service ClusterIP before making the DaemonSet, and deletes nothing meanwhile', async () => {
    const { reconcile, requests, condition } = reconcilerFor(configured, { owned: [deployment(0), pvc, daemonSet(mine)], gates: allowed });
    await reconcile();
    assert.deepEqual(applies(requests), []);
    assert.deepEqual(deletes(requests), []);
    assert.equal(condition('NodeConfigReady'), 'True Configured', 'the DaemonSet there still reports');
  });

  it('runs no node-config DaemonSet of an image off the allow-list', async () => {
    const { reconcile, requests } = reconcilerFor(subject({ image: 'example.com/miner:1', nodeConfig: { enabled: true } }), { owned: [service, pvc], gates: allowed });
    await reconcile();
    assert.deepEqual(applies(requests), []);
  });

  describe('deleting the instance', () => {
    const deleting = subject({ nodeConfig: { enabled: true } }, { deletionTimestamp: new Date(NOW), finalizers: [CLEANUP_FINALIZER] });

    it('its finalizer deletes the DaemonSet and CA copy by UID, then lets it go', async () => {
      const { reconcile, requests } = reconcilerFor(deleting, { owned: [daemonSet(mine), caCopy()], gates: allowed });
      assert.deepEqual(await reconcile(), {});
      assert.deepEqual(requests, [
        `delete DaemonSet ${OPERATOR_NAMESPACE}/${NAME} uid=nc-uid`,
        `delete ConfigMap ${OPERATOR_NAMESPACE}/${CA} uid=ca-uid`,
        'patch nixeryinstances/nixery finalizers=[]',
      ]);
    });

    it('asks the API server for what the cache has not seen yet (applied a moment ago)', async () => {
      const { reconcile, requests } = reconcilerFor(deleting, { others: [daemonSet(mine), caCopy()], gates: allowed });
      await reconcile();
      assert.deepEqual(requests, [
        `read DaemonSet ${OPERATOR_NAMESPACE}/${NAME}`,
        `delete DaemonSet ${OPERATOR_NAMESPACE}/${NAME} uid=nc-uid`,
        `read ConfigMap ${OPERATOR_NAMESPACE}/${CA}`,
        `delete ConfigMap ${OPERATOR_NAMESPACE}/${CA} uid=ca-uid`,
        'patch nixeryinstances/nixery finalizers=[]',
      ]);
    });

    it("leaves a same-named DaemonSet of someone else's there, and still lets the instance go", async () => {
      const { reconcile, requests } = reconcilerFor(deleting, { others: [daemonSet({ team: 'platform' })], gates: allowed });
      await reconcile();
      assert.deepEqual(requests.filter((r) => !r.startsWith('read')), ['patch nixeryinstances/nixery finalizers=[]']);
    });

    it('without --allow-node-config asks nothing of a namespace it may have no rights in', async () => {
      const { reconcile, requests } = reconcilerFor(deleting, { others: [daemonSet(mine)] });
      await reconcile();
      assert.deepEqual(requests, ['patch nixeryinstances/nixery finalizers=[]']);
    });
  });
});
