// Operator, part 1 (issue 7) end to end: kubectl applies the CRDs and an instance; the operator
// (installed in the cluster with the chart) brings up a registry; a pod pulls an image from it by
// the Service's DNS name. Runs against the test cluster or, with NIXERY_E2E_CLUSTER=existing, a
// real one (see support/cluster-under-test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { eventually, REPO_ROOT } from '@nixery/test-support';
import { kubectl, kubectlOk } from '../support/kube.ts';
import type { OperatorDeployment } from '../support/operator-deployment.ts';
import { createRestrictedNamespace, restricted } from '../support/pod-security.ts';
import { enableNodeConfig } from '../support/node-config.ts';

const NS = 'team-a';

describe('operator: NixeryInstance', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let operator: OperatorDeployment;

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS, 'watched', 'ignored'] });
    kubeconfig = cluster.kubeconfigPath;
  });
  after(async () => {
    await cluster?.release();
  });

  const get = async (args: string[]) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', NS, '-o', 'json', ...args]));

  it('kubectl apply of the CRDs and the example brings up a Ready registry', async () => {
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    await createRestrictedNamespace(kubeconfig, NS);
    // Node configuration allowed: pods pull by the Service's name, as on a real cluster only through node-config's hosts.toml.
    operator = await cluster.installOperator({ allowNodeConfig: true });
    await kubectlOk(kubeconfig, ['apply', '-n', NS, '-f', path.join(REPO_ROOT, 'crds/examples/instance.yaml')]);
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=180s']);
    const instance = await get(['nixeryinstance', 'nixery']);
    assert.equal(instance.status.endpoint, `nixery.${NS}.svc.cluster.local:5000`);
    assert.equal(instance.status.observedGeneration, instance.metadata.generation);
    assert.equal(instance.spec.image, 'ghcr.io/nixery-operator/nixery:0.1.0', 'defaulted by the CRD schema');
    const events = await eventually('the RegistryReady Event on the instance', async () => {
      const list = JSON.parse(await kubectlOk(kubeconfig, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.kind=NixeryInstance,involvedObject.name=nixery', '-o', 'json']));
      const items = list.items as { type: string; reason: string; message: string; source?: { component?: string } }[];
      return items.some((e) => e.reason === 'RegistryReady') ? items : undefined;
    }, 30_000, 500);
    const ready = events.find((e) => e.reason === 'RegistryReady')!;
    assert.equal(ready.type, 'Normal');
    assert.equal(ready.message, `the registry answers at nixery.${NS}.svc.cluster.local:5000`);
    assert.equal(ready.source?.component, 'nixery-operator');
    for (const [kind, name] of [['deployment', 'nixery'], ['service', 'nixery'], ['pvc', 'nixery-storage'], ['serviceaccount', 'nixery'], ['secret', 'nixery-push-token']]) {
      const object = await get([kind!, name!]);
      assert.equal(object.metadata.ownerReferences[0].kind, 'NixeryInstance', `${kind} is owned by the instance`);
    }
  });

  it('runs its registry where Pod Security admission enforces restricted, which refuses a pod that is not', async () => {
    const namespace = JSON.parse(await kubectlOk(kubeconfig, ['get', 'namespace', NS, '-o', 'json']));
    assert.equal(namespace.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
    const pods = (await get(['pods', '-l', 'app.kubernetes.io/instance=nixery,app.kubernetes.io/component=registry'])).items;
    assert.ok(pods.length > 0, 'the registry pod was admitted');
    const rootPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'as-root', namespace: NS }, spec: { containers: [{ name: 'c', image: `nixery.${NS}.svc.cluster.local:5000/shell:latest` }] } };
    const refused = await kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify(rootPod));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /pods "as-root" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
  });

  it('runs a pod whose image is pulled from the registry by the Service DNS name, once spec.nodeConfig configured the node', async () => {
    await enableNodeConfig(kubeconfig, NS, 'nixery');
    const pod = restricted({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hello', namespace: NS },
      spec: {
        restartPolicy: 'Never',
        containers: [{ name: 'hello', image: `nixery.${NS}.svc.cluster.local:5000/shell/hello:latest`, command: ['/bin/hello'] }],
      },
    });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
    await eventually('the pod to succeed', async () => ((await get(['pod', 'hello'])).status.phase === 'Succeeded' ? true : undefined), 240_000, 500);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'hello'])).trim(), 'Hello, world!');
  });

  it('shows the printer columns', async () => {
    const table = await kubectlOk(kubeconfig, ['get', '-n', NS, 'nixeryinstances']);
    const [header, row] = table.trim().split('\n');
    assert.match(header!, /^NAME\s+READY\s+ENDPOINT\s+AGE$/);
    assert.match(row!, new RegExp(`^nixery\\s+True\\s+nixery\\.${NS}\\.svc\\.cluster\\.local:5000\\s+\\S+$`));
  });

  it('rejects schema violations with the CRD message', async () => {
    const bad = (spec: object) => JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'bad', namespace: NS }, spec });
    const replicas = await kubectl(kubeconfig, ['apply', '-f', '-'], bad({ replicas: 2 }));
    assert.notEqual(replicas.code, 0);
    assert.match(replicas.stderr, /more than one replica needs shared storage/);
    const shared = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], bad({ replicas: 2, storage: { persistentVolume: { size: '1Gi', accessModes: ['ReadWriteMany'] } } }));
    assert.equal(shared.code, 0, `several replicas on a ReadWriteMany volume are accepted: ${shared.stderr}`);
    const quotaWithoutGc = await kubectl(kubeconfig, ['apply', '-f', '-'], bad({ storage: { quota: '10Gi', gc: { intervalSeconds: 0 } } }));
    assert.match(quotaWithoutGc.stderr, /storage\.quota needs garbage collection/);
    const both = await kubectl(kubeconfig, ['apply', '-f', '-'], bad({ storage: { persistentVolume: {}, gcs: { bucket: 'abc' } } }));
    assert.match(both.stderr, /at most one of persistentVolume, gcs and s3/);
    const enumValue = await kubectl(kubeconfig, ['apply', '-f', '-'], bad({ service: { type: 'Internal' } }));
    assert.match(enumValue.stderr, /Unsupported value: "Internal"/);
  });

  it('makes no write request while nothing changes, and puts a manual change back', async () => {
    // The operator resyncs every 2 s in this suite: a few resyncs of an unchanged instance.
    const before = (await cluster.requests()).length;
    await new Promise((r) => setTimeout(r, 6000));
    const window = (await cluster.requests()).slice(before);
    assert.ok(window.some((r) => r.path.endsWith('/leases/nixery-operator') && r.verb === 'update'), 'the log shows the leader renewing its Lease meanwhile');
    const writes = window.filter((r) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(r.verb) && isOperatorWrite(r));
    assert.deepEqual(writes, []);

    await kubectlOk(kubeconfig, ['scale', '-n', NS, 'deployment/nixery', '--replicas=0']);
    await eventually('the operator to restore the replica count', async () => ((await get(['deployment', 'nixery'])).spec.replicas === 1 ? true : undefined), 30_000, 500);
  });

  it('leaves an unrelated Deployment of its name untouched and says Conflict, then proceeds once it is gone', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x', namespace: NS, labels: { app: 'someone-elses' } },
      // No replicas: nothing needs to run for it to be someone's.
      spec: { replicas: 0, selector: { matchLabels: { app: 'someone-elses' } }, template: { metadata: { labels: { app: 'someone-elses' } }, spec: { containers: [{ name: 'web', image: 'example.com/web:1' }] } } },
    };
    await kubectlOk(kubeconfig, ['create', '-f', '-'], JSON.stringify(deployment));
    const before = await get(['deployment', 'x']);
    const firstRequest = (await cluster.requests()).length;
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'x', namespace: NS }, spec: {} }));
    const ready = await eventually('the instance to report the conflict', async () => {
      const condition = (await get(['nixeryinstance', 'x'])).status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
      return condition?.reason === 'Conflict' ? condition : undefined;
    }, 60_000, 500);
    assert.equal(ready.status, 'False');
    assert.match(ready.message, /^Deployment x exists and is not this NixeryInstance's/);
    const after = await get(['deployment', 'x']);
    // Not the resourceVersion: the Deployment controller writes the status of its own accord.
    assert.deepEqual([after.metadata.generation, after.spec, after.metadata.labels], [before.metadata.generation, before.spec, before.metadata.labels]);
    assert.equal(after.metadata.ownerReferences, undefined);
    const writes = (await cluster.requests()).slice(firstRequest).filter((r) => r.path.includes('/deployments/x') && r.verb !== 'get' && isOperatorWrite(r));
    assert.deepEqual(writes, [], 'the operator asked, and wrote nothing');

    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'deployment/x', '--wait=true', '--timeout=60s']);
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/x', '--timeout=180s']);
    assert.equal((await get(['deployment', 'x'])).metadata.ownerReferences[0].kind, 'NixeryInstance');
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/x', '--wait=true', '--timeout=60s']);
  });

  // The chart installs the operator without operator.allowNodeLocal or allowedRegistryImages.
  it('runs no node-local DaemonSet and no registry of a foreign image for an operator started without the gates open, and says why', async () => {
    const apply = (name: string, spec: object) =>
      kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name, namespace: NS }, spec }));
    const conditions = async (name: string) =>
      Object.fromEntries(((await get(['nixeryinstance', name])).status?.conditions ?? []).map((c: { type: string; status: string; reason: string; message: string }) => [c.type, c]));
    await apply('edge', { nodeLocal: { enabled: true, hostPort: 5999 } });
    await apply('foreign', { image: 'example.com/nixery:1' });

    // The registry itself runs: Ready as for any instance; only its node-local path is refused.
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/edge', '--timeout=180s']);
    const edge = await conditions('edge');
    assert.deepEqual([edge.NodeLocalReady?.status, edge.NodeLocalReady?.reason, edge.Degraded?.status, edge.Degraded?.reason], ['False', 'NotAllowed', 'True', 'NotAllowed']);
    assert.match(edge.NodeLocalReady.message, /--allow-node-local \(the chart's operator\.allowNodeLocal\)/);
    assert.equal((await kubectl(kubeconfig, ['get', '-n', NS, 'daemonset/edge-node-local'])).code, 1, 'no DaemonSet');

    const foreign = await eventually('the foreign image to be refused', async () => {
      const c = await conditions('foreign');
      return c.Ready?.reason === 'ImageNotAllowed' ? c : undefined;
    }, 60_000, 500);
    assert.deepEqual([foreign.Ready.status, foreign.Degraded?.status, foreign.Degraded?.reason], ['False', 'True', 'ImageNotAllowed']);
    assert.match(foreign.Ready.message, /^spec\.image example\.com\/nixery:1 is not allowed by the operator \(--allowed-registry-images=ghcr\.io\/nixery-operator\/nixery:\*,/);
    assert.equal((await kubectl(kubeconfig, ['get', '-n', NS, 'deployment/foreign'])).code, 1, 'no Deployment');

    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/edge', 'nixeryinstance/foreign', '--wait=true', '--timeout=60s']);
  });

  it('converges without duplicates when killed mid-reconcile and started again', async () => {
    const second = JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'second', namespace: NS }, spec: {} });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], second);
    await eventually('the operator to start on it', async () => ((await kubectl(kubeconfig, ['get', '-n', NS, 'deployment/second'])).code === 0 ? true : undefined), 30_000, 50);
    await operator.kill();
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/second', '--timeout=180s']);
    const owned = (kind: string) =>
      get([kind, '-l', 'app.kubernetes.io/instance=second']).then((list: { items: unknown[] }) => list.items.length);
    assert.deepEqual([await owned('deployments'), await owned('services'), await owned('pvc'), await owned('serviceaccounts')], [1, 1, 1, 1]);
  });

  it('watches only the namespaces it is given', async () => {
    // The chart grants Roles in the watched namespaces, so they exist before the operator is told.
    for (const ns of ['watched', 'ignored']) await createRestrictedNamespace(kubeconfig, ns);
    await operator.reconfigure({ namespaces: ['watched'], allowNodeConfig: true });
    for (const ns of ['watched', 'ignored']) {
      await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', path.join(REPO_ROOT, 'crds/examples/instance.yaml')]);
    }
    await kubectlOk(kubeconfig, ['wait', '-n', 'watched', '--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=180s']);
    const ignored = JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', 'ignored', 'nixeryinstance/nixery', '-o', 'json']));
    assert.equal(ignored.status, undefined);
    assert.equal((await kubectl(kubeconfig, ['get', '-n', 'ignored', 'deployment/nixery'])).code, 1);
    await operator.reconfigure({ allowNodeConfig: true });
  });

  it('removes the Deployment, Service and PVC with the instance', async () => {
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/second', '--wait=true', '--timeout=60s']);
    await eventually('garbage collection of the owned objects', async () => {
      const remaining = await Promise.all(
        [['deployment', 'second'], ['service', 'second'], ['pvc', 'second-storage']].map(async ([kind, name]) => (await kubectl(kubeconfig, ['get', '-n', NS, `${kind}/${name}`])).code === 0),
      );
      return remaining.some(Boolean) ? undefined : true;
    }, 60_000, 500);
  });
});

/**
 * The operator's reconcile writes: it passes fieldManager=nixery-operator on every write it makes
 * (the node agent writes pod status and events of its own), and its deletes only concern build
 * Jobs. Renewing the leader Lease is the leader's heartbeat, not a reconcile write.
 */
function isOperatorWrite(request: { path: string; verb: string; fieldManager?: string }): boolean {
  if (request.path.endsWith('/leases/nixery-operator')) return false;
  return request.fieldManager === 'nixery-operator' || (request.verb === 'delete' && request.path.includes('/jobs/'));
}
