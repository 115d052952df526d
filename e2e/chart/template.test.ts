// Every object `helm template` renders, for each documented values combination and both helm
// versions, validated by the test API server (`kubectl apply --dry-run=server`): custom resources
// against their CRD schemas (with CEL rules), built-in kinds against its defaulting and validation.
// Runs against the test cluster or, with NIXERY_E2E_CLUSTER=existing, a real one (see
// support/cluster-under-test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { kubectl, kubectlOk } from '../support/kube.ts';
import { CHART, HELM_VERSIONS, makeHelm, parseManifests, VALUES_DIR, valuesFiles } from './support.ts';

const RELEASE_NAMESPACE = 'nixery';
// watch-namespaces.yaml places Roles in team-a.
const NAMESPACES = [RELEASE_NAMESPACE, 'team-a'];
/** The Prometheus operator's kinds the chart renders, and the stand-in CRD for each (see those files). */
const MONITORING_CRDS = [
  { name: 'customresourcedefinitions/servicemonitors.monitoring.coreos.com', file: 'servicemonitor-crd.yaml' },
  { name: 'customresourcedefinitions/podmonitors.monitoring.coreos.com', file: 'monitoring-crds.yaml' },
  { name: 'customresourcedefinitions/prometheusrules.monitoring.coreos.com', file: 'monitoring-crds.yaml' },
];

describe('helm template, validated by the API server', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  /** A cluster running the Prometheus operator has the real CRDs: they are used, not replaced. */
  const createdMonitoringCrds: string[] = [];

  before(async () => {
    cluster = await acquireCluster({ namespaces: NAMESPACES });
    kubeconfig = cluster.kubeconfigPath;
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(CHART, 'crds')]);
    for (const crd of MONITORING_CRDS) {
      if ((await kubectl(kubeconfig, ['get', crd.name])).code === 0) continue;
      // One document of the file: the others may exist already.
      const file = path.join(import.meta.dirname, crd.file);
      const documents = fs.readFileSync(file, 'utf8').split(/^---$/m);
      const document = documents.find((d) => d.includes(`name: ${crd.name.split('/')[1]}`))!;
      await kubectlOk(kubeconfig, ['create', '-f', '-'], document);
      createdMonitoringCrds.push(crd.name);
    }
    for (const namespace of NAMESPACES) await kubectlOk(kubeconfig, ['create', 'namespace', namespace]);
  });
  after(async () => {
    for (const crd of createdMonitoringCrds) await kubectl(kubeconfig, ['delete', crd]);
    await cluster?.release();
  });

  const dryRun = (manifests: string) => kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], manifests);

  for (const version of HELM_VERSIONS) {
    it(`accepts everything helm ${version} renders for each values combination`, async () => {
      const helm = makeHelm(version, cluster.workDir);
      for (const file of valuesFiles()) {
        const manifests = await helm.ok(['template', 'nixery', CHART, '--namespace', RELEASE_NAMESPACE, '-f', file]);
        const objects = parseManifests(manifests);
        assert.ok(objects.length > 0);
        const result = await dryRun(manifests);
        assert.equal(result.code, 0, `${path.basename(file)}: ${result.stderr}`);
        const accepted = result.stdout.trim().split('\n').filter((l) => / \(server dry run\)$/.test(l));
        assert.equal(accepted.length, objects.length, `${path.basename(file)}: one accepted object per rendered one:\n${result.stdout}`);
      }
    });
  }

  it('is a real validation: a rendered instance with a bad field is refused by its CRD', async () => {
    const helm = makeHelm(4, cluster.workDir);
    const objects = parseManifests(await helm.ok(['template', 'nixery', CHART, '--namespace', RELEASE_NAMESPACE, '-f', path.join(VALUES_DIR, 'instance-gcs-ha.yaml')]));
    const instance = objects.find((o) => o.kind === 'NixeryInstance') as { spec: { storage: Record<string, unknown> } };
    instance.spec.storage.persistentVolume = { size: '1Gi' };
    const result = await dryRun(objects.map((o) => stringify(o)).join('---\n'));
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /storage takes at most one of persistentVolume, gcs and s3/);
  });

  it('the NixeryInstance CRD defaults onDemand to true and validates the package lists', async () => {
    const instance = (spec: object) =>
      JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'policy', namespace: RELEASE_NAMESPACE }, spec });
    const accepted = async (spec: object) => {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-o', 'json', '-f', '-'], instance(spec));
      assert.equal(result.code, 0, `${JSON.stringify(spec)}: ${result.stderr}`);
      return (JSON.parse(result.stdout) as { spec: Record<string, unknown> }).spec;
    };
    assert.equal((await accepted({})).onDemand, true, 'on demand unless told otherwise');
    assert.equal((await accepted({ onDemand: false })).onDemand, false);
    const lists = { allow: ['hello', 'python3Packages.*', '_7zip', 'nerd-fonts.*', '*'], deny: ['haskellPackages.pandoc', 'a'.repeat(128)] };
    assert.deepEqual((await accepted({ packages: lists })).packages, lists);
    assert.deepEqual((await accepted({ packages: { allow: Array.from({ length: 256 }, (_, i) => `p${i}`) } })).packages, {
      allow: Array.from({ length: 256 }, (_, i) => `p${i}`),
    });

    const refused: [spec: object, message: RegExp][] = [
      [{ onDemand: 'no' }, /spec\.onDemand: Invalid value: "string": spec\.onDemand in body must be of type boolean/],
      [{ packages: { allow: ['shell/git'] } }, /spec\.packages\.allow\[0\]: Invalid value: "shell\/git": spec\.packages\.allow\[0\] in body should match/],
      [{ packages: { deny: ['hello', 'a..b'] } }, /spec\.packages\.deny\[1\]: Invalid value: "a\.\.b"/],
      [{ packages: { deny: ['hello git'] } }, /spec\.packages\.deny\[0\]: Invalid value: "hello git"/],
      [{ packages: { deny: ['a'.repeat(129)] } }, /spec\.packages\.deny\[0\]: Too long: may not be (longer|more) than 128/],
      [{ packages: { deny: Array.from({ length: 257 }, (_, i) => `p${i}`) } }, /spec\.packages\.deny: Too many: 257: must have at most 256 items/],
      [{ packages: { allow: [] } }, /packages\.allow: an empty list would allow nothing/],
    ];
    for (const [spec, message] of refused) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], instance(spec));
      assert.notEqual(result.code, 0, `${JSON.stringify(spec).slice(0, 200)} was accepted`);
      assert.match(result.stderr, message, JSON.stringify(spec).slice(0, 200));
    }
  });

  it('the NixeryInstance CRD takes the bounds on on-demand builds, and refuses what the registry would refuse', async () => {
    const instance = (limits: object) =>
      JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'limits', namespace: RELEASE_NAMESPACE }, spec: { limits } });
    for (const limits of [{}, { maxQueuedBuilds: 0, clientBuildsPerMinute: 1, clientAuthChecksPerMinute: 1, maxClosureSize: '1' }, { maxQueuedBuilds: 64, maxClosureSize: '512Mi' }]) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-o', 'json', '-f', '-'], instance(limits));
      assert.equal(result.code, 0, `${JSON.stringify(limits)}: ${result.stderr}`);
      assert.deepEqual((JSON.parse(result.stdout) as { spec: { limits: object } }).spec.limits, limits);
    }
    const refused: [limits: object, message: RegExp][] = [
      [{ maxQueuedBuilds: -1 }, /spec\.limits\.maxQueuedBuilds: Invalid value: -1: spec\.limits\.maxQueuedBuilds in body should be greater than or equal to 0/],
      [{ clientBuildsPerMinute: 0 }, /spec\.limits\.clientBuildsPerMinute: Invalid value: 0: spec\.limits\.clientBuildsPerMinute in body should be greater than or equal to 1/],
      [{ clientAuthChecksPerMinute: 0 }, /spec\.limits\.clientAuthChecksPerMinute: Invalid value: 0: spec\.limits\.clientAuthChecksPerMinute in body should be greater than or equal to 1/],
      [{ clientAuthChecksPerMinute: 2.5 }, /spec\.limits\.clientAuthChecksPerMinute: Invalid value: "number": spec\.limits\.clientAuthChecksPerMinute in body must be of type integer/],
      [{ maxClosureSize: '10GB' }, /spec\.limits\.maxClosureSize: Invalid value: "10GB": spec\.limits\.maxClosureSize in body should match/],
      [{ maxClosureSize: '0' }, /spec\.limits\.maxClosureSize: Invalid value: "0"/],
      [{ maxClosureSize: 1024 }, /spec\.limits\.maxClosureSize: Invalid value: "integer": spec\.limits\.maxClosureSize in body must be of type string/],
    ];
    for (const [limits, message] of refused) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], instance(limits));
      assert.notEqual(result.code, 0, `${JSON.stringify(limits)} was accepted`);
      assert.match(result.stderr, message, JSON.stringify(limits));
    }
  });

  it('the NixeryInstance CRD takes the connection limits and the free-space reserve, and refuses what the registry would refuse', async () => {
    const instance = (limits: object) =>
      JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'limits', namespace: RELEASE_NAMESPACE }, spec: { limits } });
    const accepted = [
      { headersTimeoutSeconds: 10, receiveTimeoutSeconds: 300, sendStallTimeoutSeconds: 20, keepAliveTimeoutSeconds: 15, maxConnections: 512, minFreeSpace: '2Gi' },
      { headersTimeoutSeconds: 600 },
      { receiveTimeoutSeconds: 30 },
      { minFreeSpace: '0' },
      { minFreeSpace: '7.5%' },
      { maxConcurrentBuilds: 4, tagFlushIntervalSeconds: 5, maxRecordedTags: 50_000 },
    ];
    for (const limits of accepted) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-o', 'json', '-f', '-'], instance(limits));
      assert.equal(result.code, 0, `${JSON.stringify(limits)}: ${result.stderr}`);
      assert.deepEqual((JSON.parse(result.stdout) as { spec: { limits: object } }).spec.limits, limits);
    }
    const refused: [limits: object, message: RegExp][] = [
      [{ sendStallTimeoutSeconds: 0 }, /spec\.limits\.sendStallTimeoutSeconds: Invalid value: 0: spec\.limits\.sendStallTimeoutSeconds in body should be greater than or equal to 1/],
      [{ maxConnections: 0 }, /spec\.limits\.maxConnections: Invalid value: 0/],
      [{ minFreeSpace: '1GB' }, /spec\.limits\.minFreeSpace: Invalid value: "1GB": spec\.limits\.minFreeSpace in body should match/],
      [{ minFreeSpace: '100%' }, /spec\.limits\.minFreeSpace: Invalid value: "100%"/],
      [{ headersTimeoutSeconds: 60, receiveTimeoutSeconds: 30 }, /headersTimeoutSeconds cannot exceed limits\.receiveTimeoutSeconds/],
      [{ headersTimeoutSeconds: 601 }, /headersTimeoutSeconds cannot exceed limits\.receiveTimeoutSeconds \(default 600\)/],
      [{ receiveTimeoutSeconds: 29 }, /headersTimeoutSeconds cannot exceed/],
      [{ maxConcurrentBuilds: 0 }, /spec\.limits\.maxConcurrentBuilds: Invalid value: 0/],
      [{ tagFlushIntervalSeconds: 0 }, /spec\.limits\.tagFlushIntervalSeconds: Invalid value: 0/],
      [{ maxRecordedTags: 'many' }, /spec\.limits\.maxRecordedTags: Invalid value: "string"/],
    ];
    for (const [limits, message] of refused) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], instance(limits));
      assert.notEqual(result.code, 0, `${JSON.stringify(limits)} was accepted`);
      assert.match(result.stderr, message, JSON.stringify(limits));
    }
  });

  it('both CRDs take trusted refs for a git source, and refuse what the registry would refuse', async () => {
    const objects = (git: object) => [
      { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'refs', namespace: RELEASE_NAMESPACE }, spec: { packageSource: { git } } },
      { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'refs', namespace: RELEASE_NAMESPACE }, spec: { instanceRef: { name: 'refs' }, packages: ['hello'], tag: 'v1', packageSource: { git } } },
    ];
    const good = { url: 'https://example.com/pkgs.git', trustedRefs: ['refs/heads/main', 'refs/tags/v*', 'refs/heads/release-*-stable'] };
    for (const object of objects(good)) {
      const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-o', 'json', '-f', '-'], JSON.stringify(object));
      assert.equal(result.code, 0, `${object.kind}: ${result.stderr}`);
      assert.deepEqual((JSON.parse(result.stdout) as { spec: { packageSource: { git: object } } }).spec.packageSource.git, good);
    }
    const refused: [trustedRefs: unknown, message: RegExp][] = [
      [['heads/main'], /trustedRefs\[0\]: Invalid value: "heads\/main": .* should match/],
      [['refs/heads/*/*'], /at most one \*/],
      [['refs/heads/a..b'], /no '\.\.'/],
      [['refs/heads/x.lock'], /'\.lock'/],
      [[], /trustedRefs: Invalid value: 0: .*at least 1 items|should have at least 1 items/],
    ];
    for (const [trustedRefs, message] of refused) {
      for (const object of objects({ url: 'https://example.com/pkgs.git', trustedRefs })) {
        const result = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], JSON.stringify(object));
        assert.notEqual(result.code, 0, `${object.kind} ${JSON.stringify(trustedRefs)} was accepted`);
        assert.match(result.stderr, message, `${object.kind} ${JSON.stringify(trustedRefs)}`);
      }
    }
  });

  it('keeps its objects out of the cluster (dry run only)', async () => {
    for (const namespace of NAMESPACES) {
      assert.equal((await kubectlOk(kubeconfig, ['get', 'deployments,roles,nixeryinstances', '-n', namespace, '-o', 'name'])).trim(), '', namespace);
    }
    assert.equal((await kubectlOk(kubeconfig, ['get', 'clusterroles', '-l', 'app.kubernetes.io/name=nixery-operator', '-o', 'name'])).trim(), '');
  });
});
