// Real image pulls: the Nixery registry of this repository runs as a pod (mapped by imageMap,
// storage on a claim, reached through its Service), and pods run images pulled from it by the
// Service's cluster DNS name — skopeo, umoci and a chroot, as a container runtime would.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { eventually, REPO_ROOT } from '@nixery/test-support';
import { startCluster, TEST_IMAGES, type Cluster } from './testing.ts';

const NS = 'nixery';
const NIXERY_BIN = path.join(REPO_ROOT, 'registry/bin/nixery.js');
const REGISTRY = `registry.${NS}.svc.cluster.local:80`;

describe('node agent: pulling images from the Nixery registry running as a pod', () => {
  let cluster: Cluster;
  const core = () => cluster.kube.core;
  const pod = (name: string) => core().readNamespacedPod({ name, namespace: NS });

  before(async () => {
    if (!fs.existsSync(path.join(REPO_ROOT, 'registry/dist/cli/main.js'))) {
      throw new Error('the registry is not built: run `npx tsc -b` (scripts/test.sh does)');
    }
    cluster = await startCluster('127.99.0.0/16', [...TEST_IMAGES, { image: 'example.org/nixery', command: [process.execPath, NIXERY_BIN] }]);
    await cluster.namespace(NS);
    await core().createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: { metadata: { name: 'storage', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } } },
    });
    await cluster.kube.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'registry', namespace: NS },
        spec: {
          selector: { matchLabels: { app: 'registry' } },
          template: {
            metadata: { labels: { app: 'registry' } },
            spec: {
              volumes: [{ name: 'storage', persistentVolumeClaim: { claimName: 'storage' } }],
              containers: [{
                name: 'nixery',
                image: 'example.org/nixery:latest',
                args: ['serve', '--host', '$(POD_IP)'],
                env: [
                  { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  { name: 'PORT', value: '8080' },
                  { name: 'STORAGE_PATH', value: '/var/lib/nixery' },
                ],
                ports: [{ name: 'http', containerPort: 8080 }],
                volumeMounts: [{ name: 'storage', mountPath: '/var/lib/nixery' }],
                readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
              }],
            },
          },
        },
      },
    });
    await core().createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'registry', namespace: NS }, spec: { selector: { app: 'registry' }, ports: [{ port: 80, targetPort: 'http' }] } },
    });
    await eventually('the registry to be available', async () => {
      const d = await cluster.kube.apps.readNamespacedDeployment({ name: 'registry', namespace: NS });
      return d.status?.availableReplicas === 1 ? true : undefined;
    }, 60_000, 100);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('runs /bin/hello from shell/hello, pulled by the Service name', async () => {
    await core().createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'hello', namespace: NS }, spec: { restartPolicy: 'Never', containers: [{ name: 'hello', image: `${REGISTRY}/shell/hello:latest`, command: ['/bin/hello'] }] } },
    });
    const done = await eventually('hello to finish', async () => {
      const p = await pod('hello');
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 240_000, 250);
    const status = done.status?.containerStatuses?.[0];
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(status));
    assert.match(status?.imageID ?? '', new RegExp(`^${REGISTRY}/shell/hello@sha256:[0-9a-f]{64}$`));
    const logs = await cluster.kubectl(['logs', '-n', NS, 'hello']);
    assert.equal(logs.stdout, 'Hello, world!\n', logs.stderr);
    const reasons = (await core().listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === 'hello').map((e) => e.reason);
    for (const reason of ['Pulling', 'Pulled', 'Created', 'Started']) assert.ok(reasons.includes(reason), `${reason} in ${reasons.join(',')}`);
  });

  it('an image of a package that does not exist waits in ErrImagePull, then ImagePullBackOff, with the registry message', async () => {
    await core().createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'missing', namespace: NS }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${REGISTRY}/shell/nosuchpackage:latest` }] } },
    });
    const seen = new Map<string, string>();
    await eventually('ErrImagePull and ImagePullBackOff', async () => {
      const waiting = (await pod('missing')).status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason) seen.set(waiting.reason, waiting.message ?? '');
      return seen.has('ErrImagePull') && seen.has('ImagePullBackOff') ? true : undefined;
    }, 120_000, 100);
    assert.match(seen.get('ErrImagePull') ?? '', /manifest unknown: .*nosuchpackage/);
    assert.match(seen.get('ImagePullBackOff') ?? '', /^Back-off pulling image ".*nosuchpackage:latest": ErrImagePull: .*nosuchpackage/);
    assert.equal((await pod('missing')).status?.phase, 'Pending');
  });
});
