// The DaemonSet controller against the API server: one pod on the node, named, labelled and owned
// as upstream's; the status; a template change replaces the pod; a deleted pod comes back; a pod
// PodSecurity refuses is a FailedCreate event; the pods go with the DaemonSet. And hostPath volumes,
// as a node-config DaemonSet uses them: mapped below the node root, containerd's hosts directory
// to the cluster's certs dir.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { eventually } from '@nixery/test-support';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { mergePatch } from './kube.ts';
import { BUSYBOX_IMAGE, startCluster, type Cluster } from './testing.ts';

const NS = 'ds-it';

describe('node agent: DaemonSets', () => {
  let range: ClaimedRange;
  let cluster: Cluster;
  let certsDir: string;

  before(async () => {
    certsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-ds-certs-'));
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range, undefined, { certsDir });
    await cluster.namespace(NS);
  });
  after(async () => {
    await cluster?.stop();
    await range?.release();
    if (certsDir) fs.rmSync(certsDir, { recursive: true, force: true });
  });

  const podsOf = async (name: string): Promise<V1Pod[]> =>
    (await cluster.kube.core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` })).items;
  const daemonSet = (name: string, args: string[]): V1DaemonSet => ({
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: BUSYBOX_IMAGE, args }] },
      },
    },
  });
  const status = (name: string) => cluster.kube.apps.readNamespacedDaemonSetStatus({ namespace: NS, name });

  it('runs one pod on the node, named <ds>-<suffix>, labelled and owned; the status counts it', async () => {
    const created = await cluster.kube.apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet('agent', ['sleep', '600']) });
    const ds = await eventually('the DaemonSet to be available', async () => {
      const d = await status('agent');
      return d.status?.numberAvailable === 1 && d.status.observedGeneration === 1 ? d : undefined;
    }, 30_000, 200);
    assert.deepEqual(
      { ...ds.status },
      { currentNumberScheduled: 1, desiredNumberScheduled: 1, numberMisscheduled: 0, numberReady: 1, numberAvailable: 1, updatedNumberScheduled: 1, observedGeneration: 1 },
    );
    const pods = await podsOf('agent');
    assert.equal(pods.length, 1);
    const pod = pods[0]!;
    assert.match(pod.metadata?.name ?? '', /^agent-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.deepEqual(JSON.parse(JSON.stringify(pod.metadata?.ownerReferences)), [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: created.metadata?.uid, controller: true, blockOwnerDeletion: true }]);
    assert.equal(pod.metadata?.labels?.['pod-template-generation'], '1');
    assert.match(pod.metadata?.labels?.['controller-revision-hash'] ?? '', /^[a-z0-9]+$/);
    assert.equal(pod.spec?.nodeName, 'nixery-node');
    assert.deepEqual(JSON.parse(JSON.stringify(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms)), [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['nixery-node'] }] }]);
    const events = (await cluster.kube.core.listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.kind === 'DaemonSet' && e.involvedObject.name === 'agent');
    assert.ok(events.some((e) => e.reason === 'SuccessfulCreate' && e.message === `Created pod: ${pod.metadata?.name}`), JSON.stringify(events.map((e) => e.message)));
  });

  it('the API server defaults the update strategy as upstream (RollingUpdate, maxUnavailable 1, maxSurge 0)', async () => {
    const ds = await cluster.kube.apps.readNamespacedDaemonSet({ namespace: NS, name: 'agent' });
    assert.deepEqual(JSON.parse(JSON.stringify(ds.spec?.updateStrategy)), { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    assert.equal(ds.spec?.revisionHistoryLimit, 10);
  });

  it('a template change replaces the pod (the old one deleted first); kubectl rollout status sees it through', async () => {
    const [old] = await podsOf('agent');
    await cluster.kube.apps.patchNamespacedDaemonSet({ namespace: NS, name: 'agent', body: { spec: { template: { spec: { containers: [{ name: 'c', image: BUSYBOX_IMAGE, args: ['sleep', '601'] }] } } } } }, mergePatch);
    const rollout = await cluster.kubectl(['rollout', 'status', '-n', NS, 'daemonset/agent', '--timeout=60s']);
    assert.equal(rollout.code, 0, rollout.stderr);
    assert.match(rollout.stdout, /successfully rolled out/);
    const fresh = await eventually('only the new pod', async () => {
      const pods = await podsOf('agent');
      return pods.length === 1 && pods[0]!.metadata?.name !== old!.metadata?.name ? pods[0] : undefined;
    }, 30_000, 200);
    assert.deepEqual(fresh!.spec?.containers[0]?.args, ['sleep', '601']);
    assert.equal(fresh!.metadata?.labels?.['pod-template-generation'], '2');
    assert.notEqual(fresh!.metadata?.labels?.['controller-revision-hash'], old!.metadata?.labels?.['controller-revision-hash']);
    const s = (await status('agent')).status;
    assert.equal(s?.observedGeneration, 2);
    assert.equal(s?.updatedNumberScheduled, 1);
  });

  it('a deleted pod is created again', async () => {
    const [before] = await podsOf('agent');
    await cluster.kube.core.deleteNamespacedPod({ namespace: NS, name: before!.metadata!.name! });
    await eventually('a new pod, running', async () => {
      const pods = await podsOf('agent');
      return pods.length === 1 && pods[0]!.metadata?.name !== before!.metadata?.name && pods[0]!.status?.phase === 'Running' ? true : undefined;
    }, 30_000, 200);
  });

  it('deleting the DaemonSet takes its pod (garbage collection)', async () => {
    await cluster.kube.apps.deleteNamespacedDaemonSet({ namespace: NS, name: 'agent' });
    await eventually('no pods of the DaemonSet', async () => ((await podsOf('agent')).length === 0 ? true : undefined), 30_000, 200);
  });

  it('a pod PodSecurity refuses is a FailedCreate Warning event, retried with back-off', async () => {
    await cluster.kube.core.patchNamespace({ name: NS, body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } }, mergePatch);
    await cluster.kube.apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet('refused', ['sleep', '600']) });
    const failed = await eventually('a FailedCreate event', async () => (await cluster.kube.core.listNamespacedEvent({ namespace: NS })).items.find((e) => e.involvedObject.name === 'refused' && e.reason === 'FailedCreate'), 30_000, 200);
    assert.equal(failed.type, 'Warning');
    assert.match(failed.message ?? '', /^Error creating: pods "refused-[a-z0-9]{5}" is forbidden: violates PodSecurity "restricted:latest": /);
    const creates = () => cluster.api.requestLog.filter((r) => r.verb === 'create' && r.path === `/api/v1/namespaces/${NS}/pods`).length;
    const start = creates();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.ok(creates() - start <= 8, `${creates() - start} pod creates in 3 s`);
    assert.equal((await status('refused')).status?.currentNumberScheduled ?? 0, 0);
  });

  it('hostPath: a DaemonSet pod writes hosts.toml into the certs dir and a CRI-O drop-in into the node root; config.toml is there, read-only', async () => {
    // Where the busybox program (run on the machine's root) sees the volumes; mount points are left there, empty.
    const at = '/tmp/nixery-harness-hostpath-it';
    const hostsToml = 'server = "http://reg.team-a.svc.cluster.local:5000"\n[host."http://127.96.0.10:5000"]\n  capabilities = ["pull", "resolve"]\n';
    const script = [
      `mkdir -p ${at}/certs.d/reg.team-a.svc.cluster.local:5000`,
      `printf '%s' '${hostsToml.replaceAll('\\n', '\n')}' > ${at}/certs.d/reg.team-a.svc.cluster.local:5000/hosts.toml`,
      `echo '[[registry]]' > ${at}/registries.conf.d/nixery.conf`,
      `grep -q 'config_path = "/etc/containerd/certs.d"' ${at}/config.toml`,
      `if echo x >> ${at}/config.toml; then echo writable; exit 1; fi`,
      'echo done',
    ].join(' && ');
    await cluster.kube.core.createNamespace({ body: { metadata: { name: 'ds-host', labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } } });
    await cluster.kube.apps.createNamespacedDaemonSet({
      namespace: 'ds-host',
      body: {
        metadata: { name: 'node-config' },
        spec: {
          selector: { matchLabels: { app: 'node-config' } },
          template: {
            metadata: { labels: { app: 'node-config' } },
            spec: {
              volumes: [
                { name: 'certs', hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' } },
                { name: 'crio', hostPath: { path: '/etc/containers/registries.conf.d', type: 'DirectoryOrCreate' } },
                { name: 'config', hostPath: { path: '/etc/containerd/config.toml', type: 'File' } },
              ],
              containers: [{
                name: 'c',
                image: BUSYBOX_IMAGE,
                args: ['sh', '-c', `${script} && exec sleep 600`],
                volumeMounts: [
                  { name: 'certs', mountPath: `${at}/certs.d` },
                  { name: 'crio', mountPath: `${at}/registries.conf.d` },
                  { name: 'config', mountPath: `${at}/config.toml`, readOnly: true },
                ],
              }],
            },
          },
        },
      },
    });
    const file = path.join(certsDir, 'reg.team-a.svc.cluster.local:5000', 'hosts.toml');
    await eventually('hosts.toml in the certs dir', async () => (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === hostsToml ? true : undefined), 30_000, 200);
    const nodeRoot = path.join(cluster.dataDir, 'node-root');
    assert.equal(fs.readFileSync(path.join(nodeRoot, 'etc/containers/registries.conf.d/nixery.conf'), 'utf8'), '[[registry]]\n');
    assert.equal(fs.existsSync('/etc/containers/registries.conf.d/nixery.conf'), false, "never the machine's own path");
    let last = '';
    await eventually('the pod to be running, its checks passed', async () => {
      const [pod] = (await cluster.kube.core.listNamespacedPod({ namespace: 'ds-host' })).items;
      if (!pod?.metadata?.name) return undefined;
      const logs = await cluster.kubectl(['logs', '-n', 'ds-host', pod.metadata.name]);
      last = logs.stdout + logs.stderr;
      return logs.stdout.endsWith('done\n') ? true : undefined;
    }, 30_000, 200).catch((error: Error) => {
      throw new Error(`${error.message}; its log: ${last}`);
    });
    assert.match(last, /can't create \/tmp\/nixery-harness-hostpath-it\/config\.toml: Read-only file system/);
  });

  it('hostPath type checks fail the mount with the kubelet\'s message', async () => {
    await cluster.kube.core.createNamespacedPod({
      namespace: 'ds-host',
      body: {
        metadata: { name: 'missing-dir' },
        spec: {
          volumes: [{ name: 'v', hostPath: { path: '/var/lib/absent', type: 'Directory' } }],
          containers: [{ name: 'c', image: BUSYBOX_IMAGE, args: ['true'], volumeMounts: [{ name: 'v', mountPath: '/tmp/nixery-harness-hostpath-it/absent' }] }],
        },
      },
    });
    const event = await eventually('a FailedMount event', async () => (await cluster.kube.core.listNamespacedEvent({ namespace: 'ds-host' })).items.find((e) => e.involvedObject.name === 'missing-dir' && e.reason === 'FailedMount'), 30_000, 200);
    assert.equal(event.message, 'MountVolume.SetUp failed for volume "v" : hostPath type check failed: /var/lib/absent is not a directory');
  });
});
