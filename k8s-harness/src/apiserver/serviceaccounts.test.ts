// Identity and in-cluster access: service-account tokens (TokenRequest, as kubelets and
// `kubectl create token` ask for them), who each logged request came from and what RBAC would
// match it against, the ServiceAccount admission plugin, the `kube-root-ca.crt` ConfigMaps and
// the `default/kubernetes` Service, also across restarts.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { startApiServer } from './index.ts';
import type { RequestLogEntry } from './index.ts';
import { startTestServer } from './testing.ts';
import type { TestServer } from './testing.ts';
import { decodeTokenPayload } from './tokens.ts';

const ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function clients(kubeconfigPath: string, token?: string): { core: CoreV1Api; apps: AppsV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  if (token !== undefined) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster in the kubeconfig');
    kc.loadFromClusterAndUser(cluster, { name: 'bearer', token });
  }
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

async function message(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (err) {
    return (JSON.parse(String((err as { body?: unknown }).body)) as { message: string }).message;
  }
}

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

describe('service accounts and request identity', () => {
  let t: TestServer;
  let admin: ReturnType<typeof clients>;
  const since = (mark: number): RequestLogEntry[] => t.server.requestLog.slice(mark);
  const tokenFor = async (name: string, namespace = 'default', extra: { expirationSeconds?: number; pod?: V1Pod } = {}) => {
    const answer = await admin.core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: {
        spec: {
          audiences: [],
          ...(extra.expirationSeconds ? { expirationSeconds: extra.expirationSeconds } : {}),
          ...(extra.pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: extra.pod.metadata?.name, uid: extra.pod.metadata?.uid } } : {}),
        },
      },
    });
    return answer.status?.token ?? '';
  };

  before(async () => {
    t = await startTestServer();
    admin = clients(t.server.kubeconfigPath);
  });
  after(async () => {
    await t.stop();
  });

  it('issues a TokenRequest: a JWT naming the service account, valid for the API server, for the asked time', async () => {
    const account = await admin.core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
    const before = Math.floor(Date.now() / 1000);
    const answer = await admin.core.createNamespacedServiceAccountToken({ name: 'default', namespace: 'default', body: { spec: { audiences: [], expirationSeconds: 1200 } } });
    assert.deepEqual(answer.spec?.audiences, ['https://kubernetes.default.svc.cluster.local']);
    const claims = decodeTokenPayload(answer.status?.token ?? '') as { sub: string; iss: string; aud: string[]; exp: number; 'kubernetes.io': unknown };
    assert.equal(claims.sub, 'system:serviceaccount:default:default');
    assert.equal(claims.iss, 'https://kubernetes.default.svc.cluster.local');
    assert.deepEqual(claims.aud, ['https://kubernetes.default.svc.cluster.local']);
    assert.deepEqual(claims['kubernetes.io'], { namespace: 'default', serviceaccount: { name: 'default', uid: account.metadata?.uid } });
    assert.ok(claims.exp >= before + 1200 && claims.exp <= before + 1202);
    assert.equal(Math.floor((answer.status?.expirationTimestamp?.getTime() ?? 0) / 1000), claims.exp);
  });

  it('refuses tokens for missing accounts, too short lifetimes and stale bound objects', async () => {
    assert.equal(await code(tokenFor('nobody')), 404);
    assert.equal(await message(tokenFor('default', 'default', { expirationSeconds: 60 })), 'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes');
    const pod: V1Pod = { metadata: { name: 'bound', namespace: 'default', uid: 'not-its-uid' }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    assert.equal(await code(tokenFor('default', 'default', { pod })), 404);
    await admin.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'bound' }, spec: pod.spec! } });
    assert.match(await message(tokenFor('default', 'default', { pod })), /the UID in the bound object reference \(not-its-uid\) does not match the UID in record/);
    await admin.core.deleteNamespacedPod({ name: 'bound', namespace: 'default' });
  });

  it('logs who made each request: admin, a service account, or anonymous; other credentials get 401', async () => {
    const token = await tokenFor('default');
    const mark = t.server.requestLog.length;
    await clients(t.server.kubeconfigPath, token).core.listNamespacedConfigMap({ namespace: 'default' });
    await admin.core.listNamespacedConfigMap({ namespace: 'default' });
    const anonymous = await new Promise<number | undefined>((resolve, reject) => {
      https.get(`${t.server.url}/version`, { ca: t.server.caCertPem }, (res) => resolve(res.resume().statusCode)).on('error', reject);
    });
    assert.equal(anonymous, 200);
    assert.equal(await code(clients(t.server.kubeconfigPath, 'made-up').core.listNamespacedConfigMap({ namespace: 'default' })), 401);
    assert.equal(await code(clients(t.server.kubeconfigPath, `${token}x`).core.listNamespacedConfigMap({ namespace: 'default' })), 401);
    assert.deepEqual(
      since(mark).map((r) => [r.user, r.groups]),
      [
        ['system:serviceaccount:default:default', ['system:serviceaccounts', 'system:serviceaccounts:default', 'system:authenticated']],
        ['admin', ['system:masters', 'system:authenticated']],
        ['system:anonymous', ['system:unauthenticated']],
        ['', []],
        ['', []],
      ],
    );
  });

  it('a token dies with its service account, and a pod-bound token with its pod', async () => {
    await admin.core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'temporary' } } });
    const accountToken = await tokenFor('temporary');
    const pod = await admin.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'holder' }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
    const podToken = await tokenFor('default', 'default', { pod });
    const claims = decodeTokenPayload(podToken) as { 'kubernetes.io': { pod: unknown } };
    assert.deepEqual(claims['kubernetes.io'].pod, { name: 'holder', uid: pod.metadata?.uid });
    const list = (token: string) => code(clients(t.server.kubeconfigPath, token).core.listNamespacedPod({ namespace: 'default' }));
    assert.equal(await list(accountToken), 200);
    assert.equal(await list(podToken), 200);
    await admin.core.deleteNamespacedServiceAccount({ namespace: 'default', name: 'temporary' });
    await admin.core.deleteNamespacedPod({ namespace: 'default', name: 'holder' });
    assert.equal(await list(accountToken), 401);
    assert.equal(await list(podToken), 401);
  });

  it('kubectl create token makes a token kubectl can use', async () => {
    const token = (await t.kubectlOk(['create', 'token', 'default', '--duration=15m'])).trim();
    const mark = t.server.requestLog.length;
    assert.match(await t.kubectlOk(['--token', token, 'get', 'configmaps', '-o', 'name']), /configmap\/kube-root-ca\.crt/);
    assert.ok(since(mark).some((r) => r.user === 'system:serviceaccount:default:default' && r.resource === 'configmaps' && r.verb === 'list'));
  });

  it('records the attributes RBAC matches: group, resource, subresource, namespace, name', async () => {
    const mark = t.server.requestLog.length;
    await admin.core.readNamespacedServiceAccount({ namespace: 'default', name: 'default' });
    await admin.core.listNamespacedPod({ namespace: 'default', fieldSelector: 'metadata.name=one' });
    await admin.core.readNamespace({ name: 'kube-system' });
    await admin.apps.patchNamespacedDeployment(
      { namespace: 'default', name: 'web', fieldManager: 'test', body: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } } } },
      apply,
    );
    await admin.apps.readNamespacedDeploymentScale({ namespace: 'default', name: 'web' });
    await admin.core.listNode();
    const attributes = since(mark).map(({ method, path: p, user, groups, ...rest }) => rest);
    assert.deepEqual(attributes, [
      { verb: 'get', resourceRequest: true, apiGroup: '', apiVersion: 'v1', resource: 'serviceaccounts', namespace: 'default', name: 'default' },
      { verb: 'list', resourceRequest: true, apiGroup: '', apiVersion: 'v1', resource: 'pods', namespace: 'default', name: 'one' },
      { verb: 'get', resourceRequest: true, apiGroup: '', apiVersion: 'v1', resource: 'namespaces', namespace: 'kube-system', name: 'kube-system' },
      { verb: 'patch', fieldManager: 'test', resourceRequest: true, apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', namespace: 'default', name: 'web', created: true },
      { verb: 'get', resourceRequest: true, apiGroup: 'apps', apiVersion: 'v1', resource: 'deployments', subresource: 'scale', namespace: 'default', name: 'web' },
      { verb: 'list', resourceRequest: true, apiGroup: '', apiVersion: 'v1', resource: 'nodes' },
    ]);
    const discovery = await t.kubectl(['api-resources', '--api-group=apps']);
    assert.equal(discovery.code, 0, discovery.stderr);
    assert.ok(t.server.requestLog.some((r) => !r.resourceRequest && r.path === '/apis' && r.verb === 'get' && r.resource === undefined));
  });

  it('admission gives every container the kube-api-access volume, which no field manager owns', async () => {
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'mounted', namespace: 'default' },
      spec: {
        initContainers: [{ name: 'init', image: 'x' }],
        containers: [
          { name: 'main', image: 'x' },
          { name: 'own-mount', image: 'x', volumeMounts: [{ name: 'mine', mountPath: ACCOUNT_DIR }] },
        ],
        volumes: [{ name: 'mine', emptyDir: {} }],
      },
    };
    const pod = await admin.core.patchNamespacedPod({ namespace: 'default', name: 'mounted', fieldManager: 'test', body: manifest }, apply);
    const volume = pod.spec?.volumes?.find((v) => v.name.startsWith('kube-api-access-'));
    assert.match(volume?.name ?? '', /^kube-api-access-[a-z0-9]{5}$/);
    assert.deepEqual(JSON.parse(JSON.stringify(volume?.projected)), {
      defaultMode: 420,
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    });
    const mounts = Object.fromEntries([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => [c.name, c.volumeMounts?.map((m) => m.name)]));
    assert.deepEqual(mounts, { init: [volume?.name], main: [volume?.name], 'own-mount': ['mine'] });
    assert.doesNotMatch(JSON.stringify(pod.metadata?.managedFields), /kube-api-access/);
    const again = await admin.core.patchNamespacedPod({ namespace: 'default', name: 'mounted', fieldManager: 'test', body: manifest }, apply);
    assert.deepEqual(again.spec?.volumes, pod.spec?.volumes, 're-applying the manifest keeps the volume');
  });

  it('automountServiceAccountToken false on the pod or its account: no volume; a missing account: 403', async () => {
    await admin.core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'no-automount' }, automountServiceAccountToken: false } });
    const create = (name: string, spec: Partial<NonNullable<V1Pod['spec']>>) =>
      admin.core.createNamespacedPod({ namespace: 'default', body: { metadata: { name }, spec: { containers: [{ name: 'c', image: 'x' }], ...spec } } });
    assert.equal((await create('pod-says-no', { automountServiceAccountToken: false })).spec?.volumes, undefined);
    assert.equal((await create('account-says-no', { serviceAccountName: 'no-automount' })).spec?.volumes, undefined);
    assert.equal((await create('pod-says-yes', { serviceAccountName: 'no-automount', automountServiceAccountToken: true })).spec?.volumes?.length, 1);
    assert.equal(await message(create('no-account', { serviceAccountName: 'missing' })), 'pods "no-account" is forbidden: error looking up service account default/missing: serviceaccount "missing" not found');
  });

  it('every namespace has kube-root-ca.crt with the CA from its creation on, and keeps it', async () => {
    await admin.core.createNamespace({ body: { metadata: { name: 'fresh' } } });
    const published = await admin.core.readNamespacedConfigMap({ namespace: 'fresh', name: 'kube-root-ca.crt' });
    assert.deepEqual(published.data, { 'ca.crt': t.server.caCertPem });
    assert.ok(await admin.core.readNamespacedServiceAccount({ namespace: 'fresh', name: 'default' }));
    await admin.core.replaceNamespacedConfigMap({ namespace: 'fresh', name: 'kube-root-ca.crt', body: { ...published, data: { 'ca.crt': 'tampered' } } });
    await admin.core.deleteNamespacedConfigMap({ namespace: 'kube-public', name: 'kube-root-ca.crt' });
    for (const namespace of ['fresh', 'kube-public']) {
      const restored = async () => {
        const cm = await admin.core.readNamespacedConfigMap({ namespace, name: 'kube-root-ca.crt' }).catch(() => undefined);
        return cm?.data?.['ca.crt'] === t.server.caCertPem ? true : undefined;
      };
      const deadline = Date.now() + 5000;
      while (!(await restored())) {
        assert.ok(Date.now() < deadline, `kube-root-ca.crt restored in ${namespace}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  });
});

describe('the default/kubernetes Service', () => {
  it('points at the server, follows its port across restarts, and moves with the Service range', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'apiserver-kubernetes-svc-'));
    const read = async (kubeconfigPath: string) => {
      const { core } = clients(kubeconfigPath);
      return { service: await core.readNamespacedService({ namespace: 'default', name: 'kubernetes' }), endpoints: await core.readNamespacedEndpoints({ namespace: 'default', name: 'kubernetes' }) };
    };
    const servingCert = () => new X509Certificate(fs.readFileSync(path.join(dataDir, 'pki/server.crt')));
    try {
      const first = await startApiServer({ dataDir, serviceClusterIpRange: '127.91.0.0/16' });
      let uid: string | undefined;
      try {
        const { service, endpoints } = await read(first.kubeconfigPath);
        const port = Number(new URL(first.url).port);
        uid = service.metadata?.uid;
        assert.equal(service.spec?.clusterIP, '127.91.0.1');
        assert.equal(first.kubernetesServiceIP, '127.91.0.1');
        assert.deepEqual(service.spec?.ports?.map((p) => ({ ...p })), [{ name: 'https', protocol: 'TCP', port: 443, targetPort: port }]);
        assert.deepEqual(service.metadata?.labels, { component: 'apiserver', provider: 'kubernetes' });
        assert.deepEqual(JSON.parse(JSON.stringify(endpoints.subsets)), [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'https', port, protocol: 'TCP' }] }]);
        assert.equal(servingCert().checkIP('127.91.0.1'), '127.91.0.1');
      } finally {
        await first.stop();
      }

      const second = await startApiServer({ dataDir, serviceClusterIpRange: '127.91.0.0/16' });
      try {
        const { service, endpoints } = await read(second.kubeconfigPath);
        const port = Number(new URL(second.url).port);
        assert.equal(service.metadata?.uid, uid, 'the same Service');
        assert.equal(service.spec?.ports?.[0]?.targetPort, port);
        assert.equal(endpoints.subsets?.[0]?.ports?.[0]?.port, port);
      } finally {
        await second.stop();
      }

      const third = await startApiServer({ dataDir, serviceClusterIpRange: '127.92.0.0/16' });
      try {
        const { service } = await read(third.kubeconfigPath);
        assert.equal(service.spec?.clusterIP, '127.92.0.1');
        assert.notEqual(service.metadata?.uid, uid, 'a ClusterIP cannot change: the Service was made again');
        assert.equal(servingCert().checkIP('127.92.0.1'), '127.92.0.1', 'the serving certificate was issued again for the new address');
        assert.equal(third.caCertPem, fs.readFileSync(path.join(dataDir, 'pki/ca.crt'), 'utf8'));
      } finally {
        await third.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
