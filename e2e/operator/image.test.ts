// Operator, part 2 (issue 8) end to end: NixImages become build Jobs that run Nix and push to the
// instance's registry; status says what to pull; pods pull the declared images. Runs against the
// test cluster or, with NIXERY_E2E_CLUSTER=existing, a real one (see support/cluster-under-test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { eventually, REPO_ROOT, runOk } from '@nixery/test-support';
import { kubectl, kubectlOk } from '../support/kube.ts';
import type { OperatorDeployment } from '../support/operator-deployment.ts';
import { startContainerd, stopContainerd, type Containerd } from '../support/containerd.ts';
import { pullAndUnpack, runInRoot, skopeoInspect, skopeoInspectRaw } from '../support/oci-client.ts';
import { tempDir } from '../support/registry.ts';
import { createRestrictedNamespace, restricted } from '../support/pod-security.ts';
import { enableNodeConfig } from '../support/node-config.ts';

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
    await createRestrictedNamespace(kubeconfig, NS);
    // Pods pull by the Service's name: the nodes learn its ClusterIP from node-config's hosts.toml.
    operator = await cluster.installOperator({ allowNodeConfig: true });
    await kubectlOk(kubeconfig, ['apply', '-n', NS, '-f', path.join(EXAMPLES, 'instance.yaml')]);
    await kubectlOk(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=180s']);
    await enableNodeConfig(kubeconfig, NS, 'nixery');
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
    assert.match(table, /^NAME\s+READY\s+IMAGE\s+LAST BUILD\s+AGE\n/);
    assert.match(table, /toolbox\s+True\s+nixery\.team-a\.svc\.cluster\.local:5000\/toolbox@sha256:[a-f0-9]{64}\s+\d+[smh]\s/);
  });

  it('tells each build in Events on the NixImage, and shows its digest with -o wide', async () => {
    const toolbox = await get(['niximage', 'toolbox']);
    type Event = { type: string; reason: string; message: string; involvedObject: { kind: string; uid: string }; source: { component: string } };
    // The Events follow the status write that Ready waited for: a moment later at most.
    const events = await eventually('BuildStarted and Pushed on toolbox', async () => {
      const items = JSON.parse(await kubectlOk(kubeconfig, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=toolbox', '-o', 'json'])).items as Event[];
      return items.some((e) => e.reason === 'Pushed') ? items : undefined;
    }, 30_000, 500);
    assert.deepEqual(events.map((e) => `${e.type} ${e.reason}`).sort(), ['Normal BuildStarted', 'Normal Pushed'], 'once each, however often the operator looked');
    assert.ok(events.every((e) => e.involvedObject.kind === 'NixImage' && e.involvedObject.uid === toolbox.metadata.uid && e.source.component === 'nixery-operator'));
    assert.match(events.find((e) => e.reason === 'BuildStarted')!.message, new RegExp(`build Job ${toolbox.status.jobName} started`));
    assert.ok(events.find((e) => e.reason === 'Pushed')!.message.includes(toolbox.status.digest));

    const describe = await kubectlOk(kubeconfig, ['describe', '-n', NS, 'niximage', 'toolbox']);
    assert.match(describe, /Normal\s+BuildStarted\s+.*nixery-operator/);
    assert.match(describe, /Normal\s+Pushed\s+.*nixery-operator/);

    const wide = await kubectlOk(kubeconfig, ['get', '-n', NS, 'niximage', 'toolbox', '-o', 'wide']);
    assert.match(wide, /^NAME\s+READY\s+IMAGE\s+LAST BUILD\s+DIGEST\s+AGE\n/);
    assert.ok(wide.split('\n')[1]!.split(/\s+/).includes(toolbox.status.digest), wide);
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
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(restricted({ apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, namespace: NS }, spec: { restartPolicy: 'Never', containers: [container] } })));
    }
    for (const p of pods) {
      await eventually(`pod ${p.name} to succeed`, async () => ((await get(['pod', p.name])).status.phase === 'Succeeded' ? true : undefined), 120_000, 500);
    }
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'by-tag'])).trim(), 'Hello, world!');
    assert.match(await kubectlOk(kubeconfig, ['logs', '-n', NS, 'by-digest']), /^git version 2\.40\.1/);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'entrypoint'])).trim(), 'Hello, world!');
  });

  it('believes no pod that merely carries the build Job’s label: a forged termination message leaves status.digest alone', async () => {
    const before = await get(['niximage', 'toolbox']);
    const jobName = before.status.jobName as string;
    // While the build Job is there the operator reads its pods: that is when a forgery could count.
    assert.ok((await jobsOf('toolbox')).some((j) => j.metadata.name === jobName), `build Job ${jobName} still there (its TTL is 600 s)`);
    const forged = `sha256:${'f'.repeat(64)}`;
    const pod = restricted({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'forged-build', namespace: NS, labels: { 'job-name': jobName } },
      spec: {
        restartPolicy: 'Never',
        containers: [{ name: 'build', image: `nixery.${NS}.svc.cluster.local:5000/greeter:1.0`, command: ['/bin/sh', '-c', `printf '{"digest":"${forged}"}' > /dev/termination-log`] }],
      },
    });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
    await eventually('the forged pod to finish with its message', async () => {
      const state = (await get(['pod', 'forged-build'])).status?.containerStatuses?.[0]?.state?.terminated;
      return state?.message?.includes(forged) ? true : undefined;
    }, 120_000, 500);
    // Any change to the NixImage makes the operator look at it, and at the Job's pods, again.
    await kubectlOk(kubeconfig, ['annotate', '-n', NS, 'niximage/toolbox', `e2e.nixery.dev/poke=${Date.now()}`, '--overwrite']);
    await eventually('the operator to name the forged pod in a warning', async () => ((await operator.logs()).includes('forged-build') ? true : undefined), 60_000, 500);
    const after = await get(['niximage', 'toolbox']);
    assert.equal(after.status.digest, before.status.digest);
    assert.equal(condition(after, 'Ready')?.status, 'True');
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'pod/forged-build', '--wait=false']);
  });

  it('builds a NixImage for linux/amd64 and linux/arm64: an index skopeo and ctr resolve per platform, whose arm64 image runs under emulation', async () => {
    const spec = { instanceRef: { name: 'nixery' }, packages: ['shell', 'hello'], tag: 'v1', platforms: ['linux/amd64', 'linux/arm64'] };
    const multi = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'multi', namespace: NS }, spec };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(multi));
    const ready = await kubectl(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'niximage/multi', '--timeout=300s']);
    if (ready.code !== 0) assert.fail(`multi is not Ready: ${ready.stderr}\n${await explain()}`);
    const status = (await get(['niximage', 'multi'])).status as { digest: string; image: string; platforms: { platform: string; digest: string; sbomDigest: string }[] };
    assert.deepEqual(status.platforms.map((p) => p.platform), ['linux/amd64', 'linux/arm64']);
    const index = (await skopeoInspectRaw(registryHost, 'multi:v1', 'manifest')) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(index.manifests.map((m) => [m.platform.architecture, m.digest]), [['amd64', status.platforms[0]!.digest], ['arm64', status.platforms[1]!.digest]]);
    assert.equal((await skopeoInspect(registryHost, 'multi:v1')).Digest, status.digest, 'status.digest is the index the tag names');
    assert.equal(status.image, `nixery.${NS}.svc.cluster.local:5000/multi@${status.digest}`);

    const work = await tempDir('nixery-e2e-operator-multi-');
    let containerd: Containerd | undefined;
    try {
      const rootfs = await pullAndUnpack(registryHost, 'multi:v1', work, { arch: 'arm64' });
      assert.equal(await runInRoot(rootfs, ['/bin/uname', '-m']), 'aarch64\n');
      assert.equal(await runInRoot(rootfs, ['/bin/hello']), 'Hello, world!\n');
      containerd = await startContainerd();
      await runOk('ctr', ['--address', containerd.socket, 'images', 'pull', '--plain-http', '--platform', 'linux/arm64', `${registryHost}/multi:v1`], { timeoutMs: 300_000 });
      const content = (await runOk('ctr', ['--address', containerd.socket, 'content', 'ls', '--quiet'])).stdout.split('\n');
      assert.ok(content.includes(status.platforms[1]!.digest) && !content.includes(status.platforms[0]!.digest), 'ctr fetched the arm64 image, not the amd64 one');
    } finally {
      await stopContainerd(containerd);
      await fs.rm(work, { recursive: true, force: true });
    }

    // The node pulls the index by tag and runs its own platform's image.
    const pod = restricted({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'multi-by-tag', namespace: NS }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `nixery.${NS}.svc.cluster.local:5000/multi:v1`, command: ['/bin/uname', '-m'] }] } });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
    await eventually('pod multi-by-tag to succeed', async () => ((await get(['pod', 'multi-by-tag'])).status.phase === 'Succeeded' ? true : undefined), 120_000, 500);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'multi-by-tag'])).trim(), 'x86_64');

    // Nixery's arm64 meta-package and platforms say the same thing twice: the API server refuses it.
    const both = { ...multi, metadata: { name: 'multi-arm64', namespace: NS }, spec: { ...spec, packages: ['arm64', 'hello'] } };
    const refused = await kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify(both));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /the arm64 meta-package and platforms exclude each other/);
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
    const warnings = await eventually('the Warning on broken-image', async () => {
      const events = await kubectlOk(kubeconfig, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=broken-image', '-o', 'json']);
      const found = (JSON.parse(events).items as { type: string; reason: string; message: string }[]).filter((e) => e.type === 'Warning');
      return found.length ? found : undefined;
    }, 30_000, 500);
    assert.deepEqual(warnings.map((e) => e.reason), ['PackagesNotFound']);
    assert.match(warnings[0]!.message, /nosuchpackage/);
    // What a user waiting for it sees: the wait times out, and describe says why.
    const wait = await kubectl(kubeconfig, ['wait', '-n', NS, '--for=condition=Ready', 'niximage/broken-image', '--timeout=3s']);
    assert.notEqual(wait.code, 0);
    assert.match(wait.stderr, /timed out waiting for the condition on niximages\/broken-image/);
    const described = await kubectlOk(kubeconfig, ['describe', '-n', NS, 'niximage/broken-image']);
    assert.match(described, /PackagesNotFound/);
    assert.match(described, /nosuchpackage/);
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
