// Every object `helm template` renders, for each documented values combination and both helm
// versions, validated by the test API server (`kubectl apply --dry-run=server`): custom resources
// against their CRD schemas (with CEL rules), built-in kinds against its defaulting and validation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { stringify } from 'yaml';
import { startTestServer, type TestServer } from '../k8s/apiserver/testing.ts';
import { CHART, HELM_VERSIONS, makeHelm, parseManifests, VALUES_DIR, valuesFiles } from './support.ts';

const RELEASE_NAMESPACE = 'nixery';

describe('helm template, validated by the API server', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
    await t.kubectlOk(['apply', '-f', path.join(CHART, 'crds'), '-f', path.join(import.meta.dirname, 'servicemonitor-crd.yaml')]);
    // watch-namespaces.yaml places Roles in team-a.
    for (const namespace of [RELEASE_NAMESPACE, 'team-a']) await t.kubectlOk(['create', 'namespace', namespace]);
  });
  after(async () => {
    await t?.stop();
  });

  const dryRun = (manifests: string) => t.kubectl(['apply', '--dry-run=server', '-f', '-'], manifests);

  for (const version of HELM_VERSIONS) {
    it(`accepts everything helm ${version} renders for each values combination`, async () => {
      const helm = makeHelm(version, t.dir);
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
    const helm = makeHelm(4, t.dir);
    const objects = parseManifests(await helm.ok(['template', 'nixery', CHART, '--namespace', RELEASE_NAMESPACE, '-f', path.join(VALUES_DIR, 'instance-gcs-ha.yaml')]));
    const instance = objects.find((o) => o.kind === 'NixeryInstance') as { spec: { storage: Record<string, unknown> } };
    instance.spec.storage.persistentVolume = { size: '1Gi' };
    const result = await dryRun(objects.map((o) => stringify(o)).join('---\n'));
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /storage takes exactly one of persistentVolume and gcs/);
  });

  it('keeps its objects out of the cluster (dry run only)', async () => {
    assert.equal((await t.kubectlOk(['get', 'deployments,roles,nixeryinstances', '-A', '-o', 'name'])).trim(), '');
  });
});
