// The chart in the test cluster, with Helm 4 and Helm 3 (and with Helm 4 confined to some
// namespaces, with Roles instead of a ClusterRole): `helm install` gives a running operator
// (the chart's Deployment, run by the node agent with the pod's service-account token) that brings
// up the default instance and builds a NixImage a pod then runs; `helm upgrade` changes it;
// `helm uninstall` leaves the CRDs, the instance and its PVC. The operator, the registry and the
// build Jobs run the project's real images (scripts/build-images.sh), pushed to a registry on this
// machine and pulled by the node agent: what users install, as the users those images run as. Every request the operator's service
// account made is checked against the chart's RBAC, and every rule of it must have been needed.
// Runs against the test cluster or, with NIXERY_E2E_CLUSTER=existing, a real one (see
// support/cluster-under-test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubernetesObject, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { projectImages, type ProjectImages } from '../support/project-images.ts';
import fs from 'node:fs';
import { eventually, processesMatching } from '@nixery/test-support';
import { kubectl, kubectlOk } from '../support/kube.ts';
import { permissionsOf } from './rbac-rules.ts';
import { atomKey, deniedRequests, grantsFor, unusedPermissions, type Grant } from './rbac.ts';
import { CHART, HELM_VERSIONS, makeHelm, parseManifests, type Helm, type HelmVersion } from './support.ts';
import { createRestrictedNamespace, restricted } from '../support/pod-security.ts';

const NS = 'nixery';
const OPERATOR_USER = `system:serviceaccount:${NS}:nixery-operator`;
const BASE_VALUES = [
  '--set', 'instance.enabled=true',
  // The DaemonSet is applied (and so its RBAC exercised) even though the test node runs none.
  '--set', 'instance.nodeLocal.enabled=true',
  '--set', 'instance.storage.persistentVolume.size=1Gi',
  // A pull Secret, so that applying Secrets shows in the log.
  '--set-json', `instance.auth={"pullSecretNamespaces":["${NS}"]}`,
];

const SCENARIOS: { title: string; version: HelmVersion; values: string[]; otherNamespaces: string[] }[] = [
  ...HELM_VERSIONS.map((version) => ({ title: `helm ${version}`, version, values: BASE_VALUES, otherNamespaces: [] })),
  // Every request must then be namespaced but the registries' auth-delegator bindings.
  { title: 'helm 4, watchNamespaces', version: 4, values: [...BASE_VALUES, '--set', `watchNamespaces={${NS},team-a}`], otherNamespaces: ['team-a'] },
];

/**
 * Permissions the flow below cannot show in the request log, with the code path that needs each.
 * Anything else the chart grants must have been used.
 */
const JUSTIFIED: Record<string, string> = {
  // Checked by the OwnerReferencesPermissionEnforcement admission plugin (not run by the test
  // cluster; OpenShift runs it) whenever an object gets a blockOwnerDeletion owner reference.
  'update nixeryinstances/finalizers.nixery.dev': 'kube/labels.ts controllerReference on everything an instance owns',
  'update niximages/finalizers.nixery.dev': 'kube/labels.ts controllerReference on build Jobs',
  // Only after a create answered 409: a previous operator made the Job and the cache missed it.
  'get jobs.batch': 'image/reconciler.ts createJob → readNamespacedJob (adopting a Job after 409)',
  // The flow keeps its instance (uninstall leaves it) and names no namespace to drop.
  'delete secrets': 'instance/reconciler.ts deletePullSecret: a namespace dropped from spec.auth.pullSecretNamespaces, and the finalizer',
  // The flow's instance asks for node-local, so the chart opens that gate: nothing to take back.
  'delete daemonsets.apps': 'instance/reconciler.ts deleteRefusedDaemonSet: a node-local DaemonSet made before the operator lost --allow-node-local',
  'delete clusterrolebindings.rbac.authorization.k8s.io': "instance/reconciler.ts finalize: the registry's auth-delegator binding goes with its instance",
  // Not a request: the API server's escalation check when the operator creates a binding of it.
  'bind clusterroles.rbac.authorization.k8s.io system:auth-delegator': 'instance/auth.ts desiredAuthDelegatorBinding, applied by instance/reconciler.ts',
  // spec.tls.issuerRef needs cert-manager, which the test cluster does not run.
  'get certificates.cert-manager.io': 'instance/reconciler.ts reconcileCertificate (the current Certificate)',
  'create certificates.cert-manager.io': 'instance/reconciler.ts reconcileCertificate (applying a new Certificate)',
  'patch certificates.cert-manager.io': 'instance/reconciler.ts reconcileCertificate (applying the Certificate)',
};

for (const { title, version, values, otherNamespaces } of SCENARIOS) {
  describe(`${title}: the chart in the test cluster`, () => {
    let cluster: ClusterUnderTest;
    let kubeconfig: string;
    let helm: Helm;
    let releaseObjects: KubernetesObject[] = [];
    let images: ProjectImages;
    let INSTALL_VALUES: string[];

    before(async () => {
      cluster = await acquireCluster({ namespaces: [NS, ...otherNamespaces] });
      images = await projectImages(cluster.mode);
      INSTALL_VALUES = [...values, ...images.chartValues];
      kubeconfig = cluster.kubeconfigPath;
      helm = makeHelm(version, cluster.workDir, kubeconfig);
      // The release's namespace too, made before helm would make it: enforcing `restricted`.
      for (const namespace of [NS, ...otherNamespaces]) await createRestrictedNamespace(kubeconfig, namespace);
    });
    after(async () => {
      await cluster?.release();
      await images?.stop();
    });

    const get = async (args: string[]) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', NS, '-o', 'json', ...args]));
    const exists = async (args: string[]) => (await kubectl(kubeconfig, ['get', ...args])).code === 0;
    const operatorPods = async () => ((await get(['pods', '-l', 'app.kubernetes.io/name=nixery-operator'])).items as V1Pod[]).filter((p) => !p.metadata?.deletionTimestamp);
    const manifest = async () => parseManifests(await helm.ok(['get', 'manifest', 'nixery', '--namespace', NS]));
    /** A wait that fails with what the cluster looked like, so CI logs say why. */
    const waitOrExplain = async (args: string[]) => {
      const result = await kubectl(kubeconfig, ['wait', '-n', NS, ...args]);
      if (result.code === 0) return;
      const state = await kubectl(kubeconfig, ['get', '-n', NS, 'nixeryinstances,niximages,jobs,pods', '-o', 'wide']);
      const conditions = await kubectl(kubeconfig, ['get', '-n', NS, 'niximages', '-o', 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}']);
      const logs = await kubectl(kubeconfig, ['logs', '-n', NS, '-l', 'app.kubernetes.io/name=nixery-operator', '--tail=40']);
      const builds = await kubectl(kubeconfig, ['logs', '-n', NS, '-l', 'app.kubernetes.io/component=build', '--tail=20']);
      const registry = await kubectl(kubeconfig, ['logs', '-n', NS, 'deployment/nixery', '--tail=20']);
      assert.fail(
        `kubectl wait ${args.join(' ')}: ${result.stderr}\n${state.stdout}\n${conditions.stdout}\noperator:\n${logs.stdout}${logs.stderr}\nbuilds:\n${builds.stdout}${builds.stderr}\nregistry:\n${registry.stdout}${registry.stderr}`,
      );
    };

    it('installs the CRDs, the operator and the default instance, which becomes Ready', async () => {
      const out = await helm.ok(['install', 'nixery', CHART, '--namespace', NS, '--create-namespace', ...INSTALL_VALUES]);
      assert.match(out, /STATUS: deployed/);
      assert.match(out, /nixery\.nixery\.svc\.cluster\.local:5000\/shell\/hello:latest/, 'NOTES tell how to pull');
      for (const crd of ['nixeryinstances.nixery.dev', 'niximages.nixery.dev']) assert.ok(await exists(['crd', crd]), crd);
      releaseObjects = await manifest();

      await kubectlOk(kubeconfig, ['rollout', 'status', '-n', NS, 'deployment/nixery-operator', '--timeout=120s']);
      const [pod] = await operatorPods();
      assert.equal(pod!.spec!.serviceAccountName, 'nixery-operator');
      await waitOrExplain(['--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=120s']);
      const instance = await get(['nixeryinstance', 'nixery']);
      assert.equal(instance.status.endpoint, `nixery.${NS}.svc.cluster.local:5000`);
      assert.equal(instance.spec.image, `${images.registry.repository}:${images.registry.tag}`);
      assert.equal(pod!.spec!.containers[0]!.image, `${images.operator.repository}:${images.operator.tag}`);
      const pvc = await get(['pvc', 'nixery-storage']);
      assert.equal(pvc.metadata.ownerReferences[0].kind, 'NixeryInstance');
      const requests = (await cluster.requests()).filter((r) => r.user === OPERATOR_USER);
      assert.ok(requests.some((r) => r.verb === 'patch' && r.path.endsWith('/nixeryinstances/nixery/status')), 'the in-cluster operator wrote the status');
      if (cluster.mode === 'test-cluster') {
        // The node runs the pulled images' own programs, as the images' users.
        assert.deepEqual(uidsOf('/opt/nixery/operator/bin/nixery-operator.js'), [65532]);
        assert.deepEqual(uidsOf('/opt/nixery/registry/bin/nixery.js serve'), [10000]);
      }
    });

    it('builds a NixImage that a pod pulls by tag and runs', async () => {
      const image = (name: string, packages: string[]) =>
        JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name, namespace: NS }, spec: { instanceRef: { name: 'nixery' }, packages, tag: 'v1' } });
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], image('hello', ['shell', 'hello']));
      await waitOrExplain(['--for=condition=Ready', 'niximage/hello', '--timeout=180s']);
      // The cluster admin's part: no node resolves the Service's name, so containerd is told its
      // ClusterIP by hand (the chart's instance.nodeConfig would do it, from a privileged release namespace).
      const clusterIP = (await get(['service', 'nixery'])).spec.clusterIP as string;
      await cluster.writeRegistryHosts(`nixery.${NS}.svc.cluster.local:5000`, `http://${clusterIP}:5000`);
      const pod = restricted({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'hello', namespace: NS },
        spec: { restartPolicy: 'Never', containers: [{ name: 'hello', image: `nixery.${NS}.svc.cluster.local:5000/hello:v1`, command: ['/bin/hello'] }] },
      });
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
      await eventually('the pod to succeed', async () => ((await get(['pod', 'hello'])).status.phase === 'Succeeded' ? true : undefined), 120_000, 500);
      assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, 'hello'])).trim(), 'Hello, world!');

      // The rest of what the operator does with images, so its permissions show in the log: a
      // rebuild (the older Job is deleted), a failed build (its Job kept: a patch), deletion (the
      // finalizer reads the push token and is removed).
      const first = (await get(['niximage', 'hello'])).status.jobName as string;
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], image('hello', ['hello']));
      await eventually('the rebuild to replace the first Job', async () => {
        const now = await get(['niximage', 'hello']);
        const ready = now.status.jobName !== first && now.status.conditions.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
        return ready && !(await exists(['-n', NS, `job/${first}`])) ? true : undefined;
      }, 120_000, 500);
      await kubectlOk(kubeconfig, ['apply', '-f', '-'], image('broken', ['nosuchpackage']));
      await waitOrExplain(['--for=condition=Failed', 'niximage/broken', '--timeout=120s']);
      await eventually('the failed Job to be kept', async () => {
        const job = await get(['job', (await get(['niximage', 'broken'])).status.jobName]);
        return job.spec.ttlSecondsAfterFinished === undefined ? true : undefined;
      }, 30_000, 500);
      await kubectlOk(kubeconfig, ['delete', '-n', NS, 'niximage/hello', 'niximage/broken', '--timeout=60s']);
    });

    it('upgrades: two operator replicas with new resources, one of them leading', async () => {
      const out = await helm.ok(['upgrade', 'nixery', CHART, '--namespace', NS, ...INSTALL_VALUES, '--set', 'replicaCount=2', '--set', 'resources.limits.memory=384Mi']);
      assert.match(out, /REVISION: 2/);
      releaseObjects = [...releaseObjects, ...(await manifest())];
      const deployment = (await get(['deployment', 'nixery-operator'])) as V1Deployment;
      assert.equal(deployment.spec!.replicas, 2);
      assert.equal(deployment.spec!.template.spec!.containers[0]!.resources!.limits!.memory, '384Mi');
      await kubectlOk(kubeconfig, ['rollout', 'status', '-n', NS, 'deployment/nixery-operator', '--timeout=120s']);
      const pods = await operatorPods();
      assert.equal(pods.length, 2);
      for (const pod of pods) assert.equal(pod.spec!.containers[0]!.resources!.limits!.memory, '384Mi');
      // The old pods give the Lease up when they stop; one of the new ones takes it.
      const names = pods.map((p) => p.metadata!.name!);
      await eventually('a new operator pod to lead', async () => {
        const holder = (await get(['lease', 'nixery-operator'])).spec.holderIdentity as string | undefined;
        return holder && names.some((name) => holder.startsWith(`${name}-`)) ? true : undefined;
      }, 60_000, 500);
      // The new leader took over the instance: it is still Ready.
      await waitOrExplain(['--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=60s']);
    });

    it('uninstalls the operator and leaves the CRDs, the instance and its PVC', async () => {
      const out = await helm.ok(['uninstall', 'nixery', '--namespace', NS, '--wait', '--timeout', '120s']);
      assert.match(out, /kept due to the resource policy/);
      assert.match(out, /\[NixeryInstance\] nixery/);
      for (const [kind, name] of [['deployment', 'nixery-operator'], ['serviceaccount', 'nixery-operator'], ['role', 'nixery-operator-leader-election']]) {
        assert.equal(await exists(['-n', NS, `${kind}/${name}`]), false, `${kind}/${name} is removed`);
      }
      assert.equal(await exists(['clusterrole/nixery-operator']), false);
      for (const namespace of otherNamespaces) assert.equal(await exists(['-n', namespace, 'role/nixery-operator']), false, `the Role in ${namespace} is removed`);
      for (const crd of ['nixeryinstances.nixery.dev', 'niximages.nixery.dev']) assert.ok(await exists(['crd', crd]), `${crd} stays`);
      assert.ok(await exists(['-n', NS, 'nixeryinstance/nixery']), 'the instance stays');
      assert.ok(await exists(['-n', NS, 'pvc/nixery-storage']), 'its PVC stays');
      assert.ok(await exists(['-n', NS, 'deployment/nixery']), 'its registry stays');
    });

    it('installs again over the kept instance, adopting it', async () => {
      await helm.ok(['install', 'nixery', CHART, '--namespace', NS, ...INSTALL_VALUES, '--set', 'instance.nixTimeout=120']);
      // Helm 4 applies the chart to what it adopts; Helm 3 adopts it as it is (its patch is the
      // difference between two renderings) until an upgrade changes the value.
      assert.equal((await get(['nixeryinstance', 'nixery'])).spec.nixTimeout, version === 4 ? 120 : 60);
      await helm.ok(['upgrade', 'nixery', CHART, '--namespace', NS, ...INSTALL_VALUES, '--set', 'instance.nixTimeout=90']);
      assert.equal((await get(['nixeryinstance', 'nixery'])).spec.nixTimeout, 90);
      await helm.ok(['uninstall', 'nixery', '--namespace', NS, '--wait', '--timeout', '120s']);
      assert.ok(await exists(['-n', NS, 'nixeryinstance/nixery']), 'kept again');
    });

    it('gave the operator exactly the permissions it used', async () => {
      // Install and upgrade render the same RBAC; once is enough.
      const grants = grantsFor(dedupe(releaseObjects), { name: 'nixery-operator', namespace: NS });
      const requests = (await cluster.requests()).filter((r) => r.user === OPERATOR_USER);
      assert.ok(requests.length > 50, `the operator's requests are in the log (${requests.length})`);
      const denied = deniedRequests(grants, requests).map((r) => `${r.verb}${r.created ? '+create' : ''} ${r.path}`);
      assert.deepEqual([...new Set(denied)].sort(), [], "requests the chart's RBAC does not allow");

      if (otherNamespaces.length > 0) {
        assert.deepEqual(grants.filter((g) => g.namespace === undefined).map((g) => g.source), ['ClusterRole nixery-operator-auth-delegator'], 'one ClusterRole: the bindings');
        const clusterWide = requests.filter((r) => r.resourceRequest && !r.namespace).map((r) => `${r.verb} ${r.path.split('?')[0]}`);
        assert.deepEqual(clusterWide.filter((r) => !r.includes('/clusterrolebindings')), [], 'no cluster-wide request but the bindings');
      }
      // Only the release namespace sees the whole flow; elsewhere the operator just watches.
      const watchedOnly = (g: Grant) => g.namespace !== undefined && otherNamespaces.includes(g.namespace);
      for (const grant of grants.filter(watchedOnly)) {
        const used = new Set(requests.filter((r) => r.namespace === grant.namespace).map((r) => r.verb));
        assert.deepEqual([...used].sort(), ['list', 'watch'], `${grant.source}: the operator watches there`);
      }
      const unused = unusedPermissions(grants.filter((g) => !watchedOnly(g)), requests).map((u) => atomKey(u.atom));
      assert.deepEqual(unused.filter((key) => !(key in JUSTIFIED)).sort(), [], 'granted but neither used nor justified');
      const granted = new Set(grants.flatMap((g) => permissionsOf(g.rules).map(atomKey)));
      assert.deepEqual(Object.keys(JUSTIFIED).filter((key) => !granted.has(key)), [], 'justified but no longer granted');
    });
  });
}

/** The distinct real user IDs of the processes whose command line contains `needle`. */
function uidsOf(needle: string): number[] {
  const uids = processesMatching(needle).flatMap((line) => {
    try {
      const status = fs.readFileSync(`/proc/${line.split(' ')[0]}/status`, 'utf8');
      return [Number(/^Uid:\s+(\d+)/m.exec(status)![1])];
    } catch {
      return []; // gone meanwhile
    }
  });
  return [...new Set(uids)].sort();
}

function dedupe(objects: KubernetesObject[]): KubernetesObject[] {
  const byKey = new Map(objects.map((o) => [`${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`, o]));
  return [...byKey.values()];
}
