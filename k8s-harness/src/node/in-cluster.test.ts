// Pods use the Kubernetes API as in a real cluster: the API server's `kubernetes` Service is
// served at its ClusterIP, pods get their service account's token, the CA and their namespace
// mounted and KUBERNETES_SERVICE_* set, so client-node's loadFromCluster() works, and the API
// server knows each request came from that service account.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { BUSYBOX_IMAGE, HERE, startCluster, TEST_IMAGES, type Cluster } from './testing.ts';
import { eventually, KUBECTL } from '@nixery/test-support';

const NS = 'in-cluster';
const IN_CLUSTER_CLIENT = 'example.org/in-cluster-client';
const KUBECTL_IMAGE = 'example.org/kubectl';
const ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function pod(name: string, spec: Partial<NonNullable<V1Pod['spec']>> & Pick<NonNullable<V1Pod['spec']>, 'containers'>): V1Pod {
  return { metadata: { name, namespace: NS }, spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 1, ...spec } };
}

const busybox = (script: string) => [{ name: 'main', image: BUSYBOX_IMAGE, args: ['sh', '-c', script] }];

describe('node agent: pods use the API as in a real cluster', () => {
  let cluster: Cluster;
  const core = () => cluster.kube.core;
  const phase = async (name: string, wanted: string) => ((await core().readNamespacedPod({ name, namespace: NS })).status?.phase === wanted ? true : undefined);
  const logsOf = async (name: string) => {
    const result = await cluster.kubectl(['logs', '-n', NS, name]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };
  const succeeds = async (name: string) => {
    await eventually(`pod ${name} to succeed`, async () => {
      const p = await core().readNamespacedPod({ name, namespace: NS });
      if (p.status?.phase === 'Failed') throw new Error(`pod ${name} failed: ${await logsOf(name)}`);
      return p.status?.phase === 'Succeeded' ? true : undefined;
    }, 60_000, 100);
  };

  before(async () => {
    cluster = await startCluster('127.97.0.0/16', [
      ...TEST_IMAGES,
      { image: IN_CLUSTER_CLIENT, command: [process.execPath, path.join(HERE, 'fixtures/in-cluster.mjs')] },
      { image: KUBECTL_IMAGE, command: [KUBECTL] },
    ]);
    await cluster.namespace(NS);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('the kubernetes Service answers at its ClusterIP with a certificate valid for that address', async () => {
    const service = await core().readNamespacedService({ namespace: 'default', name: 'kubernetes' });
    assert.equal(service.spec?.clusterIP, '127.97.0.1');
    assert.equal(service.spec?.clusterIP, cluster.api.kubernetesServiceIP);
    const endpoints = await core().readNamespacedEndpoints({ namespace: 'default', name: 'kubernetes' });
    assert.deepEqual(endpoints.subsets?.map((s) => ({ ip: s.addresses?.[0]?.ip, port: s.ports?.[0]?.port })), [{ ip: '127.0.0.1', port: Number(new URL(cluster.api.url).port) }]);
    const version = await eventually('the Service proxy', () =>
      new Promise<{ gitVersion: string } | undefined>((resolve, reject) => {
        https
          .get({ host: '127.97.0.1', port: 443, path: '/version', ca: cluster.api.caCertPem }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(res.statusCode === 200 ? (JSON.parse(body) as { gitVersion: string }) : undefined));
          })
          .on('error', reject);
      }), 60_000, 100,
    );
    assert.match(version.gitVersion, /^v1\./);
  });

  it('a pod lists the pods of its namespace with loadFromCluster(), as its service account', async () => {
    await core().createNamespacedPod({ namespace: NS, body: pod('lister', { containers: [{ name: 'main', image: IN_CLUSTER_CLIENT }] }) });
    await succeeds('lister');
    const seen = JSON.parse(await logsOf('lister')) as { server: string; namespace: string; sub: string; caSha256: string; pods: string[] };
    assert.deepEqual(seen, {
      server: 'https://127.97.0.1:443',
      namespace: NS,
      sub: `system:serviceaccount:${NS}:default`,
      caSha256: crypto.createHash('sha256').update(cluster.api.caCertPem).digest('hex'),
      pods: ['lister'],
    });
    const listed = cluster.api.requestLog.filter((r) => r.user === `system:serviceaccount:${NS}:default`);
    assert.deepEqual(
      listed.map(({ verb, apiGroup, resource, namespace }) => ({ verb, apiGroup, resource, namespace })),
      [{ verb: 'list', apiGroup: '', resource: 'pods', namespace: NS }],
    );
    assert.deepEqual(listed[0]?.groups, ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated']);
  });

  it('kubectl in a pod finds the cluster and its namespace by itself', async () => {
    // The cache goes to the working directory, the pod's own on this node.
    await core().createNamespacedPod({ namespace: NS, body: pod('kubectl', { containers: [{ name: 'main', image: KUBECTL_IMAGE, args: ['get', 'pods', '-o', 'name', '--cache-dir', 'kube-cache'] }] }) });
    await succeeds('kubectl');
    assert.equal(await logsOf('kubectl'), 'pod/kubectl\npod/lister\n');
    assert.ok(cluster.api.requestLog.some((r) => r.user === `system:serviceaccount:${NS}:default` && r.verb === 'list' && r.path === `/api/v1/namespaces/${NS}/pods`));
  });

  it('every container gets the credentials and the KUBERNETES_SERVICE_* and KUBERNETES_PORT_* variables', async () => {
    const script = `busybox env | busybox grep ^KUBERNETES_ | busybox sort; busybox ls ${ACCOUNT_DIR}; busybox cat ${ACCOUNT_DIR}/namespace; echo`;
    await core().createNamespacedPod({
      namespace: NS,
      body: pod('env', { enableServiceLinks: false, initContainers: [{ name: 'init', image: BUSYBOX_IMAGE, args: ['sh', '-c', `busybox test -s ${ACCOUNT_DIR}/token`] }], containers: busybox(script) }),
    });
    await succeeds('env');
    const ip = '127.97.0.1';
    assert.equal(
      await logsOf('env'),
      [
        `KUBERNETES_PORT=tcp://${ip}:443`,
        `KUBERNETES_PORT_443_TCP=tcp://${ip}:443`,
        `KUBERNETES_PORT_443_TCP_ADDR=${ip}`,
        'KUBERNETES_PORT_443_TCP_PORT=443',
        'KUBERNETES_PORT_443_TCP_PROTO=tcp',
        `KUBERNETES_SERVICE_HOST=${ip}`,
        'KUBERNETES_SERVICE_PORT=443',
        'KUBERNETES_SERVICE_PORT_HTTPS=443',
        'ca.crt',
        'namespace',
        'token',
        NS,
        '',
      ].join('\n'),
    );
    const admitted = await core().readNamespacedPod({ namespace: NS, name: 'env' });
    const volume = admitted.spec?.volumes?.find((v) => v.name.startsWith('kube-api-access-'));
    assert.ok(volume?.projected, 'the API server added the projected kube-api-access volume');
    for (const c of [...(admitted.spec?.initContainers ?? []), ...(admitted.spec?.containers ?? [])]) {
      assert.deepEqual(c.volumeMounts?.map((m) => ({ ...m })), [{ name: volume.name, mountPath: ACCOUNT_DIR, readOnly: true }]);
    }
  });

  it('automountServiceAccountToken: false, on the pod or on its ServiceAccount, leaves the credentials out', async () => {
    await core().createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'quiet' }, automountServiceAccountToken: false } });
    const script = `busybox test ! -e ${ACCOUNT_DIR}/token`;
    await core().createNamespacedPod({ namespace: NS, body: pod('no-token', { automountServiceAccountToken: false, containers: busybox(script) }) });
    await core().createNamespacedPod({ namespace: NS, body: pod('quiet-account', { serviceAccountName: 'quiet', containers: busybox(script) }) });
    await core().createNamespacedPod({ namespace: NS, body: pod('pod-overrides', { serviceAccountName: 'quiet', automountServiceAccountToken: true, containers: busybox(`busybox test -s ${ACCOUNT_DIR}/token`) }) });
    for (const name of ['no-token', 'quiet-account', 'pod-overrides']) await succeeds(name);
    const volumes = async (name: string) => (await core().readNamespacedPod({ namespace: NS, name })).spec?.volumes ?? [];
    assert.deepEqual(await volumes('no-token'), []);
    assert.deepEqual(await volumes('quiet-account'), []);
  });

  it('a pod whose ServiceAccount does not exist is refused; a Deployment gets its pods once the account exists', async () => {
    await assert.rejects(core().createNamespacedPod({ namespace: NS, body: pod('ghostly', { serviceAccountName: 'ghost', containers: busybox('true') }) }), (error: { code?: number; body?: string }) => {
      assert.equal(error.code, 403);
      assert.equal((JSON.parse(String(error.body)) as { message: string }).message, `pods "ghostly" is forbidden: error looking up service account ${NS}/ghost: serviceaccount "ghost" not found`);
      return true;
    });
    await cluster.kube.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'late-account' },
        spec: {
          selector: { matchLabels: { app: 'late-account' } },
          template: { metadata: { labels: { app: 'late-account' } }, spec: { serviceAccountName: 'late', containers: [{ name: 'main', image: BUSYBOX_IMAGE, args: ['sleep', '600'] }] } },
        },
      },
    });
    await eventually('a FailedCreate event', async () => {
      const events = await core().listNamespacedEvent({ namespace: NS, fieldSelector: 'reason=FailedCreate' });
      return events.items.find((e) => /serviceaccount "late" not found/.test(e.message ?? ''));
    }, 60_000, 100);
    await core().createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'late' } } });
    await eventually('the Deployment to be available', async () => ((await cluster.kube.apps.readNamespacedDeployment({ namespace: NS, name: 'late-account' })).status?.availableReplicas === 1 ? true : undefined), 60_000, 100);
  });

  it('a ServiceAccount deleted after its pod was admitted: the pod waits, saying the token cannot be fetched', async () => {
    await core().createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'fleeting' } } });
    // Left unscheduled until the account is gone, so the kubelet asks for a token only then.
    await core().createNamespacedPod({ namespace: NS, body: pod('orphaned', { serviceAccountName: 'fleeting', schedulerName: 'manual', containers: busybox('true') }) });
    await core().deleteNamespacedServiceAccount({ namespace: NS, name: 'fleeting' });
    await core().createNamespacedPodBinding({ namespace: NS, name: 'orphaned', body: { metadata: { name: 'orphaned' }, target: { kind: 'Node', name: 'nixery-node' } } });
    const waiting = await eventually('the pod to report the failed mount', async () => {
      const state = (await core().readNamespacedPod({ namespace: NS, name: 'orphaned' })).status?.containerStatuses?.[0]?.state?.waiting;
      return state?.message ? state : undefined;
    }, 60_000, 100);
    assert.equal(waiting.reason, 'ContainerCreating');
    assert.match(waiting.message ?? '', /^MountVolume\.SetUp failed: volume "kube-api-access-\w+": failed to fetch token: serviceaccounts "fleeting" not found$/);
    assert.equal(await phase('orphaned', 'Pending'), true);
  });
});
