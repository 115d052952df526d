// Operator, part 2 (issue 8) end to end: NixImages become build Jobs that run Nix and push to the
// instance's registry; status says what to pull; pods pull the declared images. Runs against the
// test cluster or, with NIXERY_E2E_CLUSTER=existing, a real one (see support/cluster-under-test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { eventually, REPO_ROOT } from '@nixery/test-support';
import { kubectl, kubectlOk } from '../support/kube.ts';
import type { OperatorDeployment } from '../support/operator-deployment.ts';
import { skopeoInspect } from '../support/oci-client.ts';

const NS = 'team-a';
const EXAMPLES = path.join(REPO_ROOT, 'crds/examples');

describe('operator: NixImage', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let operator: OperatorDeployment;
  /** The registry as this process reaches it: through the API server, as from outside any cluster. */
  let registryHost: string;

  const get = async (args: string[]) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', NS, '-o', 'json', ...args]));
  const condition = (object: { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }, type: string) =>
    object.status?.conditions?.find((c) => c.type === type);
  /** What the cluster looks like, for a failure message that says why. */
  const explain = async () => {
    const state = await kubectl(kubeconfig, ['get', '-n', NS, 'niximages,jobs,pods', '-o', 'wide']);
    const conditions = await kubectl(kubeconfig, ['get', '-n', NS, 'niximages', '-o', 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}']);
    const registry = await kubectl(kubeconfig, ['logs', '-n', NS, 'deployment/nixery', '--tail=-1']);
    const registryErrors = registry.stdout.split('\n').filter((l) => /"level":"(warn|error)"/.test(l)).slice(-20).join('\n');
    return `${state.stdout}${state.stderr}\n${conditions.stdout}\noperator:\n${(await operator.logs()).split('\n').slice(-40).join('\n')}\nregistry warnings and errors:\n${registryErrors}`;
  };
  const jobsOf = async (image: string) => (await get(['jobs', '-l', `nixery.dev/image=${image}`])).items as { metadata: { name: string } }[];

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS] });
    kubeconfig = cluster.kubeconfigPath;
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    await kubectlOk(kubeconfig, ['create', 'namespace', NS]);
    operator = await cluster.installOperator();
    await kubectlOk(kubeconfig, ['apply', '-n', NS, '-f', path.join(EXAMPLES, 'instance.yaml')]);
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=180s']);
    registryHost = await cluster.serviceHost(NS, 'nixery', 5000);
  });
  after(async () => {
    await cluster?.release();
  });

  it('builds both example images; status digests are what the registry serves', async () => {
    await kubectlOk(kubeconfig, ['apply', '-n', NS, '-f', path.join(EXAMPLES, 'niximage-toolbox.yaml'), '-f', path.join(EXAMPLES, 'niximage-greeter.yaml')]);
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'niximage/toolbox', 'niximage/greeter', '--timeout=300s']);
    for (const [name, reference] of [['toolbox', 'toolbox:v1'], ['greeter', 'greeter:1.0']] as const) {
      const image = await get(['niximage', name]);
      assert.match(image.status.digest, /^sha256:[a-f0-9]{64}$/);
      assert.equal(image.status.image, `nixery.${NS}.svc.cluster.local:5000/${name}@${image.status.digest}`);
      assert.ok(image.status.layers > 1 && image.status.size > 0);
      assert.equal((await skopeoInspect(registryHost, reference)).Digest, image.status.digest, `${reference} on the registry`);
    }
    const table = await kubectlOk(kubeconfig, ['get', '-n', NS, 'niximages']);
    assert.match(table, /^NAME\s+READY\s+IMAGE\s+AGE/);
    assert.match(table, /toolbox\s+True\s+nixery\.team-a\.svc\.cluster\.local:5000\/toolbox@sha256:/);
  });

  it('runs pods from the declared image by tag and by the digest in status', async () => {
    const toolbox = await get(['niximage', 'toolbox']);
    const pods = [
      { name: 'by-tag', image: `nixery.${NS}.svc.cluster.local:5000/toolbox:v1`, command: ['/bin/hello'] },
      { name: 'by-digest', image: toolbox.status.image, command: ['/bin/git', '--version'] },
      // The greeter's entrypoint runs hello without a command.
      { name: 'entrypoint', image: `nixery.${NS}.svc.cluster.local:5000/greeter:1.0` },
    ];
    for (const p of pods) {
      const container = { name: 'main', image: p.image, ...(p.command ? { command: p.command } : {}) };
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, namespace: NS }, spec: { restartPolicy: 'Never', containers: [container] } }));
    }
    for (const p of pods) {
      await eventually(`pod ${p.name} to succeed`, async () => ((await get(['pod', p.name])).status.phase === 'Succeeded' ? true : undefined), 120_000, 500);
    }
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'by-tag'])).trim(), 'Hello, world!');
    assert.match(await kubectlOk(kubeconfig, ['logs', '-n', NS, 'by-digest']), /^git version 2\.40\.1/);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'entrypoint'])).trim(), 'Hello, world!');
  });

  it('builds again on a spec change: a new Job, a new digest, an updated status', async () => {
    const before = await get(['niximage', 'toolbox']);
    await kubectlOk(kubeconfig, ['patch', '-n', NS, 'niximage/toolbox', '--type=merge', '-p', '{"spec":{"packages":["hello"]}}']);
    const after = await eventually('the rebuilt status', async () => {
      const image = await get(['niximage', 'toolbox']);
      return image.status.observedGeneration === image.metadata.generation && condition(image, 'Ready')?.status === 'True' && image.status.digest !== before.status.digest
        ? image
        : undefined;
    }, 240_000, 500);
    assert.notEqual(after.status.jobName, before.status.jobName);
    assert.equal((await skopeoInspect(registryHost, 'toolbox:v1')).Digest, after.status.digest);
  });

  it('fails a NixImage with a missing package, naming it', async () => {
    const image = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'broken-image', namespace: NS }, spec: { instanceRef: { name: 'nixery' }, packages: ['hello', 'nosuchpackage'] } };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(image));
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Failed', 'niximage/broken-image', '--timeout=240s']);
    const failed = condition(await get(['niximage', 'broken-image']), 'Failed')!;
    assert.equal(failed.reason, 'PackagesNotFound');
    assert.match(failed.message!, /nosuchpackage/);
    const events = await kubectlOk(kubeconfig, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=broken-image', '-o', 'json']);
    assert.ok((JSON.parse(events).items as { reason: string }[]).some((e) => e.reason === 'BuildFailed'));
  });

  it('gives the later of two claims on one tag a Conflict and builds nothing for it', async () => {
    const copy = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'toolbox-copy', namespace: NS }, spec: { instanceRef: { name: 'nixery' }, name: 'toolbox', packages: ['git'], tag: 'v1' } };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(copy));
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Conflict', 'niximage/toolbox-copy', '--timeout=60s']);
    assert.deepEqual(await jobsOf('toolbox-copy'), []);
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'niximage/toolbox-copy', '--timeout=60s']);
  });

  it('adopts the running build Job after an operator restart instead of starting another', async () => {
    // `slow` sleeps for 30 s in its builder: the operator is restarted while the Job runs.
    const image = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'slow-image', namespace: NS }, spec: { instanceRef: { name: 'nixery' }, packages: ['slow'] } };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(image));
    const [job] = await eventually('the build Job', async () => {
      const jobs = await jobsOf('slow-image');
      return jobs.length ? jobs : undefined;
    }, 60_000, 500);
    await operator.kill();
    const ready = await kubectl(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'niximage/slow-image', '--timeout=170s']);
    if (ready.code !== 0) assert.fail(`slow-image is not Ready: ${ready.stderr}\n${await explain()}`);
    assert.deepEqual((await jobsOf('slow-image')).map((j) => j.metadata.name), [job!.metadata.name]);
    assert.equal((await get(['niximage', 'slow-image'])).status.jobName, job!.metadata.name);
  });

  it('removes the pushed tag when the NixImage is deleted', async () => {
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'niximage/greeter', '--timeout=60s']);
    const response = await fetch(`http://${registryHost}/v2/greeter/manifests/1.0`, { method: 'HEAD' });
    assert.equal(response.status, 404, 'greeter is not a package either, so nothing answers');
    assert.equal((await kubectl(kubeconfig, ['get', '-n', NS, 'niximage/greeter'])).code, 1);
  });
});
