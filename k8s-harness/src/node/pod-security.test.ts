// The agent's controllers meet PodSecurity admission as upstream's do: a refused pod becomes a
// FailedCreate Warning event on its ReplicaSet or Job (and a ReplicaFailure condition on the
// ReplicaSet), and creation is retried with back-off rather than in a hot loop; once the namespace
// allows the pods, they come and the condition goes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Event } from '@kubernetes/client-node';
import { eventually } from '@nixery/test-support';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { mergePatch } from './kube.ts';
import { BUSYBOX_IMAGE, startCluster, type Cluster } from './testing.ts';

const NS = 'psa-it';
const FORBIDDEN = /^Error creating: pods "[a-z0-9-]+" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "c" must set securityContext.allowPrivilegeEscalation=false\), unrestricted capabilities/;

describe('node agent controllers under PodSecurity admission', () => {
  let range: ClaimedRange;
  let cluster: Cluster;

  before(async () => {
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range);
    await cluster.kube.core.createNamespace({ body: { metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  });
  after(async () => {
    await cluster?.stop();
    await range?.release();
  });

  const eventsFor = async (kind: string, name: string): Promise<CoreV1Event[]> =>
    (await cluster.kube.core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.kind === kind && e.involvedObject.name === name);
  const podCreates = (): number => cluster.api.requestLog.filter((r) => r.verb === 'create' && r.path === `/api/v1/namespaces/${NS}/pods`).length;
  const template = { metadata: { labels: { app: 'sleepy' } }, spec: { containers: [{ name: 'c', image: BUSYBOX_IMAGE, args: ['sleep', '600'] }] } };

  it('a ReplicaSet whose pods are refused gets FailedCreate events and a ReplicaFailure condition, retried with back-off; allowed, it recovers', async () => {
    await cluster.kube.apps.createNamespacedReplicaSet({ namespace: NS, body: { metadata: { name: 'sleepy' }, spec: { replicas: 1, selector: { matchLabels: { app: 'sleepy' } }, template } } });
    const failed = await eventually('a FailedCreate event on the ReplicaSet', async () => (await eventsFor('ReplicaSet', 'sleepy')).find((e) => e.reason === 'FailedCreate'), 30_000, 200);
    assert.equal(failed.type, 'Warning');
    assert.match(failed.message ?? '', FORBIDDEN);
    const condition = await eventually(
      'a ReplicaFailure condition',
      async () => (await cluster.kube.apps.readNamespacedReplicaSetStatus({ namespace: NS, name: 'sleepy' })).status?.conditions?.find((c) => c.type === 'ReplicaFailure'),
      30_000,
      200,
    );
    assert.equal(condition.status, 'True');
    assert.equal(condition.reason, 'FailedCreate');
    assert.match(condition.message ?? '', /^pods "sleepy-[a-z0-9]+" is forbidden: violates PodSecurity "restricted:latest": /);

    // Back-off: over three seconds only a handful of attempts (a hot loop would make hundreds).
    const start = podCreates();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const attempts = podCreates() - start;
    assert.ok(attempts <= 8, `${attempts} pod creates in 3 s`);

    await cluster.kube.core.patchNamespace(
      { name: NS, body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } } },
      mergePatch,
    );
    await eventually('the pod once the namespace allows it', async () => ((await cluster.kube.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=sleepy' })).items.length === 1 ? true : undefined), 30_000, 200);
    await eventually(
      'the ReplicaFailure condition to go',
      async () => ((await cluster.kube.apps.readNamespacedReplicaSetStatus({ namespace: NS, name: 'sleepy' })).status?.conditions ?? []).every((c) => c.type !== 'ReplicaFailure') || undefined,
      30_000,
      200,
    );
  });

  it('a Job whose pods are refused gets a FailedCreate event', async () => {
    await cluster.kube.core.patchNamespace({ name: NS, body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } }, mergePatch);
    await cluster.kube.batch.createNamespacedJob({ namespace: NS, body: { metadata: { name: 'once' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: BUSYBOX_IMAGE, args: ['true'] }] } } } } });
    const failed = await eventually('a FailedCreate event on the Job', async () => (await eventsFor('Job', 'once')).find((e) => e.reason === 'FailedCreate'), 30_000, 200);
    assert.equal(failed.type, 'Warning');
    assert.match(failed.message ?? '', FORBIDDEN);
  });
});
