// The node agent against the API server: workloads, Service networking, volumes, probes, logs.
// Pods here are local processes: the tiny HTTP fixture and busybox, mapped by imageMap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { V1Container, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { mergePatch } from './kube.ts';
import { eventually } from '@nixery/test-support';
import { BUSYBOX_IMAGE, startCluster, TINY_HTTP, type Cluster } from './testing.ts';

const NS = 'agent-it';

function webDeployment(message: string): V1Deployment {
  return {
    metadata: { name: 'web', namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'web',
              image: TINY_HTTP,
              env: [
                { name: 'HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'PORT', value: '8080' },
                { name: 'MESSAGE', value: message },
              ],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

function busyboxPod(name: string, script: string, extra: Partial<V1Container> = {}): V1Pod {
  return {
    metadata: { name, namespace: NS },
    spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX_IMAGE, args: ['sh', '-c', script], ...extra }] },
  };
}

function busyboxJob(name: string, script: string, spec: Partial<NonNullable<V1Job['spec']>> = {}, container: Partial<V1Container> = {}): V1Job {
  return {
    metadata: { name, namespace: NS },
    spec: {
      ...spec,
      template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX_IMAGE, args: ['sh', '-c', script], ...container }] } },
    },
  };
}

describe('node agent: a one-node cluster of local processes', () => {
  let cluster: Cluster;
  const core = () => cluster.kube.core;
  const podCount = async (labelSelector: string) => (await core().listNamespacedPod({ namespace: NS, labelSelector })).items.length;
  const apps = () => cluster.kube.apps;
  const batch = () => cluster.kube.batch;
  const pod = (name: string) => core().readNamespacedPod({ name, namespace: NS });
  const podPhase = async (name: string, phase: string) => ((await pod(name)).status?.phase === phase ? true : undefined);
  const logsOf = async (name: string, extra: string[] = []) => {
    const result = await cluster.kubectl(['logs', '-n', NS, name, ...extra]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };
  const serviceAddress = (name: string) => cluster.serviceAddress(NS, name);

  before(async () => {
    cluster = await startCluster('127.98.0.0/16');
    await cluster.namespace(NS);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('registers a Ready node that publishes its kubelet endpoint', async () => {
    const node = await eventually('the node', async () => core().readNode({ name: 'nixery-node' }), 60_000, 100);
    assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.deepEqual({ ...node.status?.addresses?.[0] }, { type: 'InternalIP', address: '127.0.0.1' });
    const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 0;
    const answer = await fetch(`http://127.0.0.1:${port}/containerLogs/${NS}/nothing/here`);
    assert.equal(answer.status, 404);
  });

  it('runs a Deployment through a ReplicaSet; its Service answers at the ClusterIP from the host', async () => {
    await apps().createNamespacedDeployment({ namespace: NS, body: webDeployment('v1') });
    await core().createNamespacedService({ namespace: NS, body: { metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } } });
    const deployment = await eventually('the Deployment to be available', async () => {
      const d = await apps().readNamespacedDeployment({ name: 'web', namespace: NS });
      const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
      return d.status?.availableReplicas === 1 && progressing?.reason === 'NewReplicaSetAvailable' ? d : undefined;
    }, 60_000, 100);
    assert.equal(deployment.status?.observedGeneration, deployment.metadata?.generation);
    assert.equal(deployment.status?.updatedReplicas, 1);
    assert.equal(deployment.status?.readyReplicas, 1);
    assert.equal(deployment.status?.conditions?.find((c) => c.type === 'Available')?.status, 'True');

    const [rs] = (await apps().listNamespacedReplicaSet({ namespace: NS })).items;
    assert.equal(rs?.metadata?.ownerReferences?.[0]?.uid, deployment.metadata?.uid);
    const hash = rs?.metadata?.labels?.['pod-template-hash'];
    assert.ok(hash && rs?.metadata?.name === `web-${hash}`);
    const [webPod] = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
    assert.equal(webPod?.metadata?.ownerReferences?.[0]?.uid, rs?.metadata?.uid);
    assert.equal(webPod?.spec?.nodeName, 'nixery-node');
    assert.match(webPod?.status?.podIP ?? '', /^127\.226\.\d+\.\d+$/);
    assert.deepEqual(webPod?.status?.conditions?.filter((c) => c.status === 'True').map((c) => c.type).sort(), [
      'ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'PodScheduled', 'Ready',
    ]);

    const endpoints = await eventually('endpoints', async () => {
      const ep = await core().readNamespacedEndpoints({ name: 'web', namespace: NS });
      return ep.subsets?.[0]?.addresses?.length ? ep : undefined;
    }, 60_000, 100);
    assert.deepEqual(endpoints.subsets?.[0]?.ports?.map((p) => ({ ...p })), [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.equal(endpoints.subsets?.[0]?.addresses?.[0]?.ip, webPod?.status?.podIP);

    const address = await serviceAddress('web');
    const body = await eventually('the Service to answer', async () => (await fetch(`http://${address}/from-host`)).json() as Promise<{ pod: string; path: string }>, 60_000, 100);
    assert.deepEqual(body, { pod: webPod?.metadata?.name, message: 'v1', path: '/from-host' });
  });

  it('a pod reaches the Service by its cluster DNS names (busybox wget through /etc/hosts)', async () => {
    const script = `busybox wget -q -O- http://web.${NS}.svc.cluster.local/fqdn && busybox wget -q -O- http://web/short && busybox wget -q -O- http://web.${NS}:80/ns`;
    await core().createNamespacedPod({ namespace: NS, body: busyboxPod('client', script) });
    await eventually('the client pod to succeed', () => podPhase('client', 'Succeeded'), 60_000, 100);
    const lines = (await logsOf('client')).trim().split('\n').map((l) => JSON.parse(l) as { path: string; message: string });
    assert.deepEqual(lines.map((l) => l.path), ['/fqdn', '/short', '/ns']);
    const status = (await pod('client')).status?.containerStatuses?.[0];
    assert.equal(status?.state?.terminated?.exitCode, 0);
    assert.equal(status?.state?.terminated?.reason, 'Completed');
  });

  it('a running pod resolves a Service created after it started (its hosts file is rewritten in place)', async () => {
    const script = 'for i in $(busybox seq 150); do busybox wget -q -O- http://late/ && exit 0; busybox sleep 0.2; done; exit 1';
    await core().createNamespacedPod({ namespace: NS, body: busyboxPod('early', script) });
    await eventually('the early pod to run', () => podPhase('early', 'Running'), 60_000, 100);
    await core().createNamespacedService({ namespace: NS, body: { metadata: { name: 'late', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] } } });
    await eventually('the early pod to reach the late Service', () => podPhase('early', 'Succeeded'), 60_000, 100);
  });

  it('rolls the Deployment to a new template and scales it', async () => {
    await apps().patchNamespacedDeployment(
      { name: 'web', namespace: NS, body: { spec: { template: { spec: { containers: [{ ...webDeployment('v2').spec!.template.spec!.containers[0]! }] } } } } },
      mergePatch,
    );
    const address = await serviceAddress('web');
    await eventually('the new version behind the Service', async () => {
      const d = await apps().readNamespacedDeployment({ name: 'web', namespace: NS });
      if (d.status?.observedGeneration !== d.metadata?.generation || d.status?.updatedReplicas !== 1 || d.status?.replicas !== 1) return undefined;
      const body = (await (await fetch(`http://${address}/`)).json()) as { message: string };
      return body.message === 'v2' ? true : undefined;
    }, 60_000, 100);
    const rollout = await cluster.kubectl(['rollout', 'status', 'deployment/web', '-n', NS, '--timeout=60s']);
    assert.equal(rollout.code, 0, rollout.stderr);
    assert.match(rollout.stdout, /successfully rolled out/);
    const sets = (await apps().listNamespacedReplicaSet({ namespace: NS })).items;
    assert.equal(sets.length, 2);
    const revisions = Object.fromEntries(sets.map((rs) => [rs.metadata?.annotations?.['deployment.kubernetes.io/revision'], rs.spec?.replicas]));
    assert.deepEqual(revisions, { '1': 0, '2': 1 });

    await apps().patchNamespacedDeployment({ name: 'web', namespace: NS, body: { spec: { replicas: 2 } } }, mergePatch);
    const endpoints = await eventually('two ready endpoints', async () => {
      const ep = await core().readNamespacedEndpoints({ name: 'web', namespace: NS });
      return ep.subsets?.[0]?.addresses?.length === 2 ? ep : undefined;
    }, 60_000, 100);
    const ips = new Set(endpoints.subsets?.[0]?.addresses?.map((a) => a.ip));
    assert.equal(ips.size, 2, 'every pod has an address of its own');
    await apps().patchNamespacedDeployment({ name: 'web', namespace: NS, body: { spec: { replicas: 1 } } }, mergePatch);
    await eventually('one pod again', async () => ((await podCount('app=web')) === 1 ? true : undefined), 60_000, 100);
  });

  it('deleting a pod stops its process and the ReplicaSet replaces it', async () => {
    const [victim] = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
    const ip = victim?.status?.podIP;
    await core().deleteNamespacedPod({ name: victim?.metadata?.name ?? '', namespace: NS });
    await eventually('the pod to be gone', async () => {
      const pods = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
      return pods.some((p) => p.metadata?.uid === victim?.metadata?.uid) ? undefined : true;
    }, 60_000, 100);
    await assert.rejects(fetch(`http://${ip}:8080/`), 'its process no longer listens');
    await eventually('a replacement', async () => {
      const d = await apps().readNamespacedDeployment({ name: 'web', namespace: NS });
      return d.status?.availableReplicas === 1 ? true : undefined;
    }, 60_000, 100);
  });

  it('a Job completes; the termination message lands in the pod status', async () => {
    const script = `echo building; echo '{"digest":"sha256:0123"}' > /dev/termination-log`;
    const created = await batch().createNamespacedJob({ namespace: NS, body: busyboxJob('build', script) });
    const job = await eventually('the Job to complete', async () => {
      const j = await batch().readNamespacedJob({ name: 'build', namespace: NS });
      return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ? j : undefined;
    }, 60_000, 100);
    assert.equal(job.status?.succeeded, 1);
    assert.ok(job.status?.startTime && job.status?.completionTime);
    const [jobPod] = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'job-name=build' })).items;
    assert.equal(jobPod?.metadata?.labels?.['controller-uid'], created.metadata?.uid);
    assert.equal(jobPod?.metadata?.ownerReferences?.[0]?.kind, 'Job');
    const terminated = jobPod?.status?.containerStatuses?.[0]?.state?.terminated;
    assert.equal(terminated?.exitCode, 0);
    assert.equal(terminated?.message, '{"digest":"sha256:0123"}\n');
    assert.equal(jobPod?.status?.phase, 'Succeeded');
  });

  it('a failing Job is Failed after backoffLimit; FallbackToLogsOnError reports the log tail', async () => {
    await batch().createNamespacedJob({
      namespace: NS,
      body: busyboxJob('broken', 'echo "package missing" >&2; exit 3', { backoffLimit: 1 }, { terminationMessagePolicy: 'FallbackToLogsOnError' }),
    });
    const job = await eventually('the Job to fail', async () => {
      const j = await batch().readNamespacedJob({ name: 'broken', namespace: NS });
      return j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') ? j : undefined;
    }, 60_000, 100);
    assert.equal(job.status?.conditions?.find((c) => c.type === 'Failed')?.reason, 'BackoffLimitExceeded');
    assert.equal(job.status?.failed, 2);
    assert.equal(job.status?.completionTime, undefined);
    const pods = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'job-name=broken' })).items;
    assert.equal(pods.length, 2);
    for (const p of pods) {
      assert.equal(p.status?.phase, 'Failed');
      const terminated = p.status?.containerStatuses?.[0]?.state?.terminated;
      assert.equal(terminated?.exitCode, 3);
      assert.equal(terminated?.reason, 'Error');
      assert.equal(terminated?.message, 'package missing\n');
    }
  });

  it('ttlSecondsAfterFinished deletes a finished Job, and its pods go with it', async () => {
    await batch().createNamespacedJob({ namespace: NS, body: busyboxJob('short-lived', 'true', { ttlSecondsAfterFinished: 1 }) });
    await eventually('the Job to be deleted', async () => {
      const jobs = (await batch().listNamespacedJob({ namespace: NS })).items;
      return jobs.some((j) => j.metadata?.name === 'short-lived') ? undefined : true;
    }, 60_000, 100);
    await eventually('its pods to be collected', async () => ((await podCount('job-name=short-lived')) === 0 ? true : undefined), 60_000, 100);
  });

  it('kubectl logs reads a container log through the API server, also following it', async () => {
    const [webPod] = (await core().listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items;
    assert.match(await logsOf(webPod?.metadata?.name ?? ''), /^listening on 127\.226\.\d+\.\d+:8080$/m);
    await core().createNamespacedPod({ namespace: NS, body: busyboxPod('counter', 'for i in 1 2 3; do echo line $i; busybox sleep 0.2; done') });
    // Started means running or already done: right after creation there is no container status at all.
    await eventually('the counter to start', async () => {
      const state = (await pod('counter')).status?.containerStatuses?.[0]?.state;
      return state?.running || state?.terminated ? true : undefined;
    }, 60_000, 100);
    assert.equal(await logsOf('counter', ['-f']), 'line 1\nline 2\nline 3\n');
    assert.equal(await logsOf('counter', ['--tail=1']), 'line 3\n');
  });

  it('volumes: a bound claim, Secret and ConfigMap as env and files, an emptyDir shared with an init container', async () => {
    await core().createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name: 'data', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    const claim = await eventually('the claim to be Bound', async () => {
      const c = await core().readNamespacedPersistentVolumeClaim({ name: 'data', namespace: NS });
      return c.status?.phase === 'Bound' ? c : undefined;
    }, 60_000, 100);
    assert.deepEqual(claim.status?.capacity, { storage: '1Gi' });
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'creds', namespace: NS }, stringData: { password: 's3cret' } } });
    await core().createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'settings', namespace: NS }, data: { greeting: 'hi' } } });
    const base = '/srv/nixery-node-it';
    const body: V1Pod = {
      metadata: { name: 'volumes', namespace: NS, labels: { role: 'volumes' } },
      spec: {
        restartPolicy: 'Never',
        volumes: [
          { name: 'work', emptyDir: {} },
          { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'secret', secret: { secretName: 'creds', defaultMode: 0o400 } },
          { name: 'config', configMap: { name: 'settings', items: [{ key: 'greeting', path: 'nested/greeting.txt' }] } },
        ],
        initContainers: [{ name: 'init', image: BUSYBOX_IMAGE, args: ['sh', '-c', `echo from-init > ${base}/work/init.txt`], volumeMounts: [{ name: 'work', mountPath: `${base}/work` }] }],
        containers: [
          {
            name: 'main',
            image: BUSYBOX_IMAGE,
            args: ['sh', '-c', [
              `cat ${base}/work/init.txt ${base}/secret/password ${base}/config/nested/greeting.txt`,
              'echo; echo "$PASSWORD $GREETING $POD $ROLE"',
              // A Secret volume's names are links through `..data`, as a kubelet writes them: -L reads the file's mode.
              `busybox stat -L -c %a ${base}/secret/password`,
              `echo persisted > ${base}/data/file`,
              `busybox touch ${base}/secret/x 2>/dev/null || echo secret volume is read-only`,
            ].join('; ')],
            env: [
              { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
              { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'ROLE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['role']" } } },
            ],
            envFrom: [{ configMapRef: { name: 'settings' } }],
            volumeMounts: [
              { name: 'work', mountPath: `${base}/work` },
              { name: 'data', mountPath: `${base}/data` },
              { name: 'secret', mountPath: `${base}/secret` },
              { name: 'config', mountPath: `${base}/config` },
            ],
          },
        ],
      },
    };
    body.spec!.containers[0]!.env!.push({ name: 'GREETING', value: '$(greeting)!' });
    await core().createNamespacedPod({ namespace: NS, body });
    await eventually('the volumes pod to succeed', () => podPhase('volumes', 'Succeeded'), 60_000, 100);
    assert.equal(await logsOf('volumes'), 'from-init\ns3crethi\ns3cret hi! volumes volumes\n400\nsecret volume is read-only\n');
    assert.equal(await logsOf('volumes', ['-c', 'init']), '');
    assert.equal(await fs.readFile(path.join(cluster.dataDir, 'volumes/pvc', NS, 'data/file'), 'utf8'), 'persisted\n');
    // The mount points stay on the host (see mountpoints.ts), empty: what the pod wrote went into its volumes.
    for (const name of ['work', 'data', 'secret', 'config']) assert.deepEqual(await fs.readdir(path.join(base, name)), [], `${base}/${name} on the host`);
    const init = (await pod('volumes')).status?.initContainerStatuses?.[0];
    assert.equal(init?.state?.terminated?.exitCode, 0);
  });

  it('a failing liveness probe restarts the container; readiness follows its probe', async () => {
    await core().createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'unhealthy', namespace: NS },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'main',
            image: BUSYBOX_IMAGE,
            args: ['sh', '-c', 'echo started; exec busybox sleep 600'],
            livenessProbe: { exec: { command: ['/usr/bin/busybox', 'false'] }, periodSeconds: 1, failureThreshold: 1 },
            readinessProbe: { exec: { command: ['/usr/bin/busybox', 'true'] }, periodSeconds: 1 },
          }],
        },
      },
    });
    const status = await eventually('a restart', async () => {
      const s = (await pod('unhealthy')).status?.containerStatuses?.[0];
      return (s?.restartCount ?? 0) >= 1 && s?.lastState?.terminated ? s : undefined;
    }, 30_000, 100);
    assert.equal(status.lastState?.terminated?.reason, 'Error');
    const events = (await core().listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === 'unhealthy');
    assert.ok(events.some((e) => e.reason === 'Unhealthy' && /Liveness probe failed/.test(e.message ?? '')));
    assert.ok(events.some((e) => e.reason === 'Killing'));
    assert.equal(await logsOf('unhealthy', ['--previous']), 'started\n');
    await core().deleteNamespacedPod({ name: 'unhealthy', namespace: NS });
  });

  it('an image that is neither mapped nor a registry reference waits in ErrImagePull / ImagePullBackOff', async () => {
    await core().createNamespacedPod({ namespace: NS, body: { metadata: { name: 'unmapped', namespace: NS }, spec: { containers: [{ name: 'main', image: 'nginx:1.27' }] } } });
    const waiting = await eventually('the pull to fail', async () => {
      const w = (await pod('unmapped')).status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === 'ErrImagePull' || w?.reason === 'ImagePullBackOff' ? w : undefined;
    }, 60_000, 100);
    assert.match(waiting.message ?? '', /"nginx:1\.27" is not mapped to a local program .* does not name a registry/);
    assert.equal((await pod('unmapped')).status?.phase, 'Pending');
    await core().deleteNamespacedPod({ name: 'unmapped', namespace: NS });
  });

  it('a missing executable is a StartError, and under Never the pod fails', async () => {
    await core().createNamespacedPod({ namespace: NS, body: busyboxPod('nothing-to-run', '', { command: ['/no/such/program'], args: [] }) });
    await eventually('the pod to fail', () => podPhase('nothing-to-run', 'Failed'), 60_000, 100);
    const terminated = (await pod('nothing-to-run')).status?.containerStatuses?.[0]?.state?.terminated;
    assert.equal(terminated?.reason, 'StartError');
    assert.match(terminated?.message ?? '', /"\/no\/such\/program": executable file not found/);
  });
});
