// Real image pulls: the Nixery registry of this repository runs as a pod (mapped by imageMap,
// storage on a claim, reached through its Service), and pods run images pulled from it by the
// Service's cluster DNS name — skopeo, umoci and a chroot, as a container runtime would, as the
// user the pod's securityContext or the image config names.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { eventually, REPO_ROOT, runOk } from '@nixery/test-support';
import { startCluster, TEST_IMAGES, type Cluster } from './testing.ts';

const NS = 'nixery';
const NIXERY_BIN = path.join(REPO_ROOT, 'registry/bin/nixery.js');
const REGISTRY = `registry.${NS}.svc.cluster.local:80`;
const PUSH_TOKEN = 'k8s-harness-registry-pull-push-token';
const HELLO = `${REGISTRY}/shell/hello:latest`;

describe('node agent: pulling images from the Nixery registry running as a pod', () => {
  let cluster: Cluster;
  let work: string;
  const core = () => cluster.kube.core;
  const pod = (name: string) => core().readNamespacedPod({ name, namespace: NS });

  before(async () => {
    if (!fs.existsSync(path.join(REPO_ROOT, 'registry/dist/cli/main.js'))) {
      throw new Error('the registry is not built: run `npx tsc -b` (scripts/test.sh does)');
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-node-pull-'));
    // Pulls by the Service's name without a hosts.toml: the lenient node, whatever the default (strict pulls: strict-pull.test.ts).
    cluster = await startCluster('127.99.0.0/16', [...TEST_IMAGES, { image: 'example.org/nixery', command: [process.execPath, NIXERY_BIN] }], { strictNodePulls: false });
    await cluster.namespace(NS);
    for (const name of ['storage', 'data']) {
      await core().createNamespacedPersistentVolumeClaim({
        namespace: NS,
        body: { metadata: { name, namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } } },
      });
    }
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
                  { name: 'NIXERY_PUSH_TOKEN', value: PUSH_TOKEN },
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

    // Images whose config names a user, made the way one edits an image: shell/hello from the
    // registry, /etc/passwd and /etc/group added as a layer, User set in the config, pushed back.
    const registry = `${await cluster.serviceAddress(NS, 'registry')}:80`;
    const layout = path.join(work, 'layout');
    await runOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry}/shell/hello:latest`, `oci:${layout}:base`], { timeoutMs: 240_000 });
    fs.writeFileSync(path.join(work, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:4321:4322:An app:/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(work, 'group'), 'root:x:0:\napp:x:4322:\nextra:x:5000:app\n');
    await runOk('umoci', ['insert', '--image', `${layout}:base`, path.join(work, 'passwd'), '/etc/passwd'], { timeoutMs: 60_000 });
    await runOk('umoci', ['insert', '--image', `${layout}:base`, path.join(work, 'group'), '/etc/group'], { timeoutMs: 60_000 });
    for (const user of ['app', 'ghost']) {
      await runOk('umoci', ['config', '--image', `${layout}:base`, '--tag', user, `--config.user=${user}`], { timeoutMs: 60_000 });
      await runOk('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-registry-token', PUSH_TOKEN, `oci:${layout}:${user}`, `docker://${registry}/test/user:${user}`], { timeoutMs: 120_000 });
    }
  });
  after(async () => {
    await cluster?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** Creates a pod and waits until `done` says it got where the test wants it; a failure shows where it was instead. */
  async function runPod<T>(body: V1Pod, what: string, done: (p: V1Pod) => T | undefined, timeoutMs = 120_000): Promise<T> {
    await core().createNamespacedPod({ namespace: NS, body: { ...body, metadata: { ...body.metadata, namespace: NS } } });
    let last: V1Pod | undefined;
    try {
      return await eventually(what, async () => done((last = await pod(body.metadata!.name!))), timeoutMs, 250);
    } catch (error) {
      throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status?.containerStatuses)}`);
    }
  }
  const finished = (p: V1Pod) => (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined);
  const waitingFor = (reason: string) => (p: V1Pod) => {
    const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
    return waiting?.reason === reason ? waiting.message ?? '' : undefined;
  };
  const logs = async (name: string) => {
    const result = await cluster.kubectl(['logs', '-n', NS, name]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };

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

  it('runAsUser, runAsGroup and fsGroup: the ids, a writable emptyDir, claim and termination message, HOME, an exec probe as the user; a read-only root, no_new_privs', async () => {
    const script = [
      'id',
      'cat /proc/self/status',
      'echo "HOME=$HOME"',
      'touch /cache/a /data/b && stat -c "%n %u:%g" /cache/a /data/b',
      'echo written-by-user > /dev/termination-log',
      'touch /made-here 2>/dev/null || echo root-read-only',
      // The readiness probe writes its own id into the emptyDir.
      'i=0; while [ ! -s /cache/probe-id ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done',
      'echo "probe: $(cat /cache/probe-id)"',
    ].join('\n');
    const done = await runPod({
      metadata: { name: 'ids' },
      spec: {
        restartPolicy: 'Never',
        securityContext: { runAsUser: 1234, runAsGroup: 2345, fsGroup: 3456 },
        volumes: [{ name: 'cache', emptyDir: {} }, { name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        containers: [{
          name: 'main',
          image: HELLO,
          command: ['/bin/sh', '-c', script],
          securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
          volumeMounts: [{ name: 'cache', mountPath: '/cache' }, { name: 'data', mountPath: '/data' }],
          readinessProbe: { exec: { command: ['/bin/sh', '-c', 'id > /cache/probe-id.tmp && mv /cache/probe-id.tmp /cache/probe-id'] }, periodSeconds: 1 },
        }],
      },
    }, 'the ids pod to finish', finished);
    const status = done.status?.containerStatuses?.[0];
    const out = await logs('ids');
    assert.equal(done.status?.phase, 'Succeeded', `${JSON.stringify(status)}\n${out}`);
    const lines = out.split('\n');
    assert.equal(lines[0], 'uid=1234 gid=2345 groups=2345,3456');
    const field = (name: string) => lines.find((l) => l.startsWith(`${name}:`))?.split(/\s+/).slice(1).filter(Boolean).join(' ');
    assert.equal(field('Uid'), '1234 1234 1234 1234');
    assert.equal(field('Gid'), '2345 2345 2345 2345');
    assert.equal(field('Groups'), '2345 3456');
    assert.equal(field('NoNewPrivs'), '1');
    assert.ok(lines.includes('root-read-only'), out);
    assert.ok(lines.includes('HOME=/'), 'HOME from the (missing) passwd entry: /');
    assert.ok(lines.includes('/cache/a 1234:3456'), out);
    assert.ok(lines.includes('/data/b 1234:3456'), out);
    assert.ok(lines.includes('probe: uid=1234 gid=2345 groups=2345,3456'), out);
    assert.equal(status?.state?.terminated?.message, 'written-by-user\n');
  });

  it('runAsNonRoot with an image that runs as root: CreateContainerConfigError with kubelet\'s message', async () => {
    const message = await runPod(
      { metadata: { name: 'nonroot' }, spec: { restartPolicy: 'Never', securityContext: { runAsNonRoot: true }, containers: [{ name: 'main', image: HELLO, command: ['/bin/hello'] }] } },
      'CreateContainerConfigError',
      waitingFor('CreateContainerConfigError'),
    );
    const uid = (await pod('nonroot')).metadata?.uid;
    assert.equal(message, `container has runAsNonRoot and image will run as root (pod: "nonroot_${NS}(${uid})", container: main)`);
    const events = (await core().listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === 'nonroot');
    assert.ok(events.some((e) => e.reason === 'Failed' && e.message === `Error: ${message}`), JSON.stringify(events.map((e) => e.message)));
    assert.equal((await pod('nonroot')).status?.phase, 'Pending');
  });

  it("an image whose config names a user runs as that user: uid, groups and HOME from the image's passwd and group files", async () => {
    const done = await runPod(
      { metadata: { name: 'image-user' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${REGISTRY}/test/user:app`, command: ['/bin/sh', '-c', 'id; echo "HOME=$HOME"; pwd'] }] } },
      'the image-user pod to finish',
      finished,
    );
    const out = await logs('image-user');
    assert.equal(done.status?.phase, 'Succeeded', out);
    assert.equal(out, 'uid=4321(app) gid=4322(app) groups=4322(app),5000(extra)\nHOME=/home/app\n/\n');
  });

  it('runAsNonRoot cannot verify an image user given by name; a name the image lacks cannot be created', async () => {
    const nonNumeric = await runPod(
      { metadata: { name: 'named-nonroot' }, spec: { restartPolicy: 'Never', securityContext: { runAsNonRoot: true }, containers: [{ name: 'main', image: `${REGISTRY}/test/user:app` }] } },
      'CreateContainerConfigError',
      waitingFor('CreateContainerConfigError'),
    );
    const uid = (await pod('named-nonroot')).metadata?.uid;
    assert.equal(nonNumeric, `container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: "named-nonroot_${NS}(${uid})", container: main)`);
    const unknown = await runPod(
      { metadata: { name: 'ghost' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${REGISTRY}/test/user:ghost` }] } },
      'CreateContainerError',
      waitingFor('CreateContainerError'),
    );
    assert.equal(unknown, 'unable to find user ghost: no matching entries in passwd file');
  });
});
