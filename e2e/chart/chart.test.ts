// The chart without a cluster: versions tied to the package, CRDs identical to crds/, `helm lint
// --strict` of every documented values combination, the values schema rejecting bad values, and
// what the templates render — with Helm 4 and Helm 3.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject, V1ClusterRole, V1Deployment, V1Role } from '@kubernetes/client-node';
import { run } from '@nixery/test-support';
import { CHART, HELM_VERSIONS, makeHelm, parseManifests, readYaml, REPO_ROOT, tempHome, VALUES_DIR, valuesFiles, type Helm } from './support.ts';

const home = tempHome('nixery-chart-');
after(() => fs.rmSync(home, { recursive: true, force: true }));

const render = async (helm: Helm, args: string[] = []): Promise<KubernetesObject[]> =>
  parseManifests(await helm.ok(['template', 'nixery', CHART, '--namespace', 'nixery', ...args]));
const find = <T extends KubernetesObject>(objects: KubernetesObject[], kind: string, name?: string, namespace?: string): T[] =>
  objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name) && (namespace === undefined || o.metadata?.namespace === namespace)) as T[];

describe('chart metadata', () => {
  it('Chart.yaml version and appVersion are the package version', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const chart = readYaml<{ apiVersion: string; version: string; appVersion: string }>(path.join(CHART, 'Chart.yaml'));
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.version, pkg.version);
    assert.equal(chart.appVersion, pkg.version);
  });

  it('documents every key of values.yaml in a comment right above it', () => {
    const lines = fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8').split('\n');
    const undocumented = lines.flatMap((line, i) => {
      const key = /^(\s*)([A-Za-z][\w]*):/.exec(line);
      if (!key) return [];
      const above = lines[i - 1] ?? '';
      return above.startsWith(`${key[1]}#`) ? [] : [`line ${i + 1}: ${key[2]}`];
    });
    assert.deepEqual(undocumented, []);
  });

  it('ships crds/ unchanged, and sync-chart-crds.sh --check catches drift', async () => {
    const script = path.join(REPO_ROOT, 'scripts/sync-chart-crds.sh');
    const check = await run('bash', [script, '--check']);
    assert.equal(check.code, 0, `the chart's CRDs differ from crds/: ${check.stderr}`);
    const source = fs.readdirSync(path.join(REPO_ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(fs.readdirSync(path.join(CHART, 'crds')).sort(), source);
    for (const file of source) {
      assert.equal(fs.readFileSync(path.join(CHART, 'crds', file), 'utf8'), fs.readFileSync(path.join(REPO_ROOT, 'crds', file), 'utf8'), file);
    }

    // The same script in a scratch copy of the layout: an edited copy and a stray file are drift.
    const scratch = path.join(home, 'sync');
    fs.mkdirSync(path.join(scratch, 'scripts'), { recursive: true });
    fs.copyFileSync(script, path.join(scratch, 'scripts/sync-chart-crds.sh'));
    fs.cpSync(path.join(REPO_ROOT, 'crds'), path.join(scratch, 'crds'), { recursive: true });
    fs.cpSync(path.join(CHART, 'crds'), path.join(scratch, 'charts/nixery-operator/crds'), { recursive: true });
    const copied = path.join(scratch, 'charts/nixery-operator/crds', source[0]!);
    fs.appendFileSync(copied, '# edited in the chart\n');
    fs.writeFileSync(path.join(scratch, 'charts/nixery-operator/crds/stray.yaml'), 'kind: Stray\n');
    const drift = await run('bash', [path.join(scratch, 'scripts/sync-chart-crds.sh'), '--check']);
    assert.equal(drift.code, 1);
    assert.match(drift.stderr, new RegExp(`out of date: charts/nixery-operator/crds/${source[0]!.replace(/\./g, '\\.')}`));
    assert.match(drift.stderr, /not in crds\/: charts\/nixery-operator\/crds\/stray\.yaml/);
    assert.equal((await run('bash', [path.join(scratch, 'scripts/sync-chart-crds.sh')])).code, 0);
    assert.equal((await run('bash', [path.join(scratch, 'scripts/sync-chart-crds.sh'), '--check'])).code, 0);
  });
});

/** Bad values and what each helm's schema validator says about them. */
const BAD_VALUES: { name: string; values: object; helm3: RegExp; helm4: RegExp }[] = [
  { name: 'a string for a number', values: { replicaCount: 'two' }, helm3: /replicaCount: Invalid type\. Expected: integer, given: string/, helm4: /at '\/replicaCount': got string, want integer/ },
  { name: 'an unknown key', values: { replicas: 2 }, helm3: /Additional property replicas is not allowed/, helm4: /additional properties 'replicas' not allowed/ },
  { name: 'a nested unknown key', values: { instance: { storage: { size: '1Gi' } } }, helm3: /instance\.storage: Additional property size is not allowed/, helm4: /at '\/instance\/storage': additional properties 'size' not allowed/ },
  { name: 'a pull policy outside the enum', values: { image: { pullPolicy: 'Sometimes' } }, helm3: /image\.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"/, helm4: /at '\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/ },
  { name: 'a service type outside the enum', values: { instance: { service: { type: 'Internal' } } }, helm3: /instance\.service\.type must be one of the following/, helm4: /at '\/instance\/service\/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'/ },
  { name: 'a log level outside the enum', values: { operator: { logLevel: 'verbose' } }, helm3: /operator\.logLevel must be one of the following: "debug", "info", "warn", "error"/, helm4: /at '\/operator\/logLevel': value must be one of 'debug', 'info', 'warn', 'error'/ },
  { name: 'gcs storage without a bucket', values: { instance: { storage: { type: 'gcs' } } }, helm3: /instance\.storage\.gcs\.bucket: String length must be greater than or equal to 3/, helm4: /at '\/instance\/storage\/gcs\/bucket': minLength: got 0, want 3/ },
  { name: 'several registry pods on a persistent volume', values: { instance: { replicas: 2 } }, helm3: /instance\.storage\.type must be one of the following: "gcs", "s3"/, helm4: /at '\/instance\/storage\/type': value must be one of 'gcs', 's3'/ },
  { name: 'two operator replicas without leader election', values: { replicaCount: 2, leaderElection: { enabled: false } }, helm3: /leaderElection\.enabled does not match: true/, helm4: /at '\/leaderElection\/enabled': value must be true/ },
  { name: 'two TLS modes', values: { instance: { tls: { selfSigned: {}, secretName: 'cert' } } }, helm3: /instance\.tls: Must have at most 1 properties/, helm4: /at '\/instance\/tls': maxProperties: got 2, want 1/ },
  { name: 'a policy action outside the enum', values: { instance: { auth: { policy: { rules: [{ repositories: ['**'], authenticated: true, actions: ['write'] }] } } } }, helm3: /instance\.auth\.policy\.rules\.0\.actions\.0 must be one of the following: "pull", "push", "delete"/, helm4: /at '\/instance\/auth\/policy\/rules\/0\/actions\/0': value must be one of 'pull', 'push', 'delete'/ },
  { name: 'two package sources', values: { instance: { packageSource: { channel: 'nixos-24.05', path: '/pkgs' } } }, helm3: /instance\.packageSource: Must have at most 1 properties/, helm4: /at '\/instance\/packageSource': maxProperties: got 2, want 1/ },
  { name: 'a git source without url', values: { instance: { packageSource: { git: { ref: 'main' } } } }, helm3: /instance\.packageSource\.git: url is required/, helm4: /at '\/instance\/packageSource\/git': missing property 'url'/ },
  { name: 'a namespace that is no DNS label', values: { watchNamespaces: ['Team_A'] }, helm3: /watchNamespaces\.0: Does not match pattern/, helm4: /at '\/watchNamespaces\/0': 'Team_A' does not match pattern/ },
  { name: 'an existing service account without its name', values: { serviceAccount: { create: false } }, helm3: /serviceAccount\.name: String length must be greater than or equal to 1/, helm4: /at '\/serviceAccount\/name': minLength: got 0, want 1/ },
  { name: 'a storage size that is no quantity', values: { instance: { storage: { persistentVolume: { size: 'lots' } } } }, helm3: /instance\.storage\.persistentVolume\.size: Does not match pattern/, helm4: /at '\/instance\/storage\/persistentVolume\/size': 'lots' does not match pattern/ },
  { name: 'a port out of range', values: { operator: { healthPort: 70000 } }, helm3: /operator\.healthPort: Must be less than or equal to 65535/, helm4: /at '\/operator\/healthPort': maximum: got 70,?000, want 65,?535/ },
  { name: 'onDemand as a string', values: { instance: { onDemand: 'no' } }, helm3: /instance\.onDemand: Invalid type\. Expected: boolean, given: string/, helm4: /at '\/instance\/onDemand': got string, want boolean/ },
  { name: 'a layer compression outside the enum', values: { instance: { layerCompression: 'brotli' } }, helm3: /instance\.layerCompression must be one of the following: "gzip", "zstd"/, helm4: /at '\/instance\/layerCompression': value must be one of 'gzip', 'zstd'/ },
  { name: 'a package entry that is no attribute path', values: { instance: { packages: { allow: ['hello', 'shell/git'] } } }, helm3: /instance\.packages\.allow\.1: Does not match pattern/, helm4: /at '\/instance\/packages\/allow\/1': 'shell\/git' does not match pattern/ },
  { name: 'packages as a comma-separated string', values: { instance: { packages: { deny: 'nano,htop' } } }, helm3: /instance\.packages\.deny: Invalid type\. Expected: array, given: string/, helm4: /at '\/instance\/packages\/deny': got string, want array/ },
  { name: 'a closure size that is no quantity', values: { instance: { limits: { maxClosureSize: '10GB' } } }, helm3: /instance\.limits\.maxClosureSize: Does not match pattern/, helm4: /at '\/instance\/limits\/maxClosureSize': '10GB' does not match pattern/ },
  { name: 'a negative queue', values: { instance: { limits: { maxQueuedBuilds: -1 } } }, helm3: /instance\.limits\.maxQueuedBuilds: Must be greater than or equal to 0/, helm4: /at '\/instance\/limits\/maxQueuedBuilds': minimum: got -1, want 0/ },
  { name: 'an unknown limit', values: { instance: { limits: { maxBuilds: 3 } } }, helm3: /instance\.limits: Additional property maxBuilds is not allowed/, helm4: /at '\/instance\/limits': additional properties? 'maxBuilds' not allowed/ },
  { name: 'a send-stall timeout of 0', values: { instance: { limits: { sendStallTimeoutSeconds: 0 } } }, helm3: /instance\.limits\.sendStallTimeoutSeconds: Must be greater than or equal to 1/, helm4: /at '\/instance\/limits\/sendStallTimeoutSeconds': minimum: got 0, want 1/ },
  { name: 'an image pattern with a space', values: { operator: { allowedRegistryImages: ['ghcr.io/x/nixery :*'] } }, helm3: /operator\.allowedRegistryImages\.0: Does not match pattern/, helm4: /at '\/operator\/allowedRegistryImages\/0': 'ghcr\.io\/x\/nixery :\*' does not match pattern/ },
  { name: 'allowNodeLocal as a string', values: { operator: { allowNodeLocal: 'yes' } }, helm3: /operator\.allowNodeLocal: Invalid type\. Expected: boolean, given: string/, helm4: /at '\/operator\/allowNodeLocal': got string, want boolean/ },
  { name: 'a free-space reserve that is no size or percentage', values: { instance: { limits: { minFreeSpace: '1GB' } } }, helm3: /instance\.limits\.minFreeSpace: Does not match pattern/, helm4: /at '\/instance\/limits\/minFreeSpace': '1GB' does not match pattern/ },
];

for (const version of HELM_VERSIONS) {
  describe(`helm ${version}`, () => {
    const helm = makeHelm(version, home);

    it('lints every documented values combination with --strict', async () => {
      const files = valuesFiles();
      assert.ok(files.length >= 5, 'the values combinations are in e2e/chart/values/');
      for (const file of files) {
        const result = await helm(['lint', '--strict', CHART, '--namespace', 'nixery', '-f', file]);
        assert.equal(result.code, 0, `helm lint --strict -f ${path.basename(file)}:\n${result.stdout}${result.stderr}`);
        assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      }
    });

    it('rejects bad values with the schema message', async () => {
      for (const bad of BAD_VALUES) {
        const file = path.join(home, `bad-${version}.json`);
        fs.writeFileSync(file, JSON.stringify(bad.values));
        const result = await helm(['template', 'nixery', CHART, '--namespace', 'nixery', '-f', file]);
        assert.notEqual(result.code, 0, `${bad.name} was accepted`);
        assert.match(result.stderr, /values don't meet the specifications of the schema/, bad.name);
        assert.match(result.stderr, version === 3 ? bad.helm3 : bad.helm4, `${bad.name}:\n${result.stderr}`);
        // lint reports the same through the schema.
        assert.notEqual((await helm(['lint', '--strict', CHART, '-f', file])).code, 0, `lint accepted ${bad.name}`);
      }
    });

    it('refuses a default instance in a namespace the operator does not watch', async () => {
      const result = await helm(['template', 'nixery', CHART, '--namespace', 'nixery', '--set', 'instance.enabled=true', '--set', 'watchNamespaces={team-a}']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /instance\.enabled creates the instance in nixery, which watchNamespaces leaves out/);
    });

    it('renders the operator Deployment: published image, leader election, probes, non-root', async () => {
      const objects = await render(helm);
      const [deployment] = find<V1Deployment>(objects, 'Deployment', 'nixery-operator', 'nixery');
      assert.ok(deployment, 'the operator Deployment');
      const pod = deployment.spec!.template.spec!;
      const container = pod.containers[0]!;
      assert.equal(container.image, 'ghcr.io/nixery-operator/operator:0.1.0');
      assert.equal(deployment.spec!.replicas, 1);
      assert.deepEqual(container.args, ['--health-port=8081', '--health-host=$(POD_IP)', '--resync-seconds=300', '--workers=2']);
      assert.deepEqual(container.env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
      assert.equal(container.livenessProbe?.httpGet?.path, '/healthz');
      assert.equal(container.readinessProbe?.httpGet?.path, '/readyz');
      assert.deepEqual(container.ports, [{ name: 'metrics', containerPort: 8081, protocol: 'TCP' }]);
      assert.deepEqual(container.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65532,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.serviceAccountName, 'nixery-operator');
      assert.deepEqual(find(objects, 'NixeryInstance'), []);
      assert.deepEqual(find(objects, 'ServiceMonitor'), []);
    });

    it('renders cluster-wide RBAC by default and the same rules as Roles with watchNamespaces', async () => {
      const clusterWide = await render(helm);
      const [clusterRole] = find<V1ClusterRole>(clusterWide, 'ClusterRole', 'nixery-operator');
      assert.ok(clusterRole);
      // The NixImage Events (image/events.ts), in both modes: the Roles below carry the same rules.
      assert.deepEqual(clusterRole.rules!.filter((r) => r.resources?.includes('events')), [{ apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
      const [binding] = find<KubernetesObject & { subjects: unknown[] }>(clusterWide, 'ClusterRoleBinding', 'nixery-operator');
      assert.deepEqual(binding!.subjects, [{ kind: 'ServiceAccount', name: 'nixery-operator', namespace: 'nixery' }]);
      const [delegator] = find<V1ClusterRole>(clusterWide, 'ClusterRole', 'nixery-operator-auth-delegator');
      assert.deepEqual(delegator!.rules, [
        { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterrolebindings'], verbs: ['list', 'watch', 'get', 'create', 'patch', 'delete'] },
        // bind on that one role: the operator never holds TokenReview rights itself.
        { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], resourceNames: ['system:auth-delegator'], verbs: ['bind'] },
      ]);
      const [lease] = find<V1Role>(clusterWide, 'Role', 'nixery-operator-leader-election', 'nixery');
      assert.deepEqual(lease!.rules, [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['nixery-operator'], verbs: ['get', 'update'] },
      ]);

      const confined = await render(helm, ['-f', path.join(VALUES_DIR, 'watch-namespaces.yaml')]);
      // Only the cluster-scoped part: binding the registries' ServiceAccounts to system:auth-delegator.
      assert.deepEqual(find(confined, 'ClusterRole').map((r) => r.metadata!.name), ['nixery-operator-auth-delegator']);
      assert.deepEqual(find(confined, 'ClusterRoleBinding').map((r) => r.metadata!.name), ['nixery-operator-auth-delegator']);
      for (const namespace of ['nixery', 'team-a']) {
        const [role] = find<V1Role>(confined, 'Role', 'nixery-operator', namespace);
        assert.deepEqual(role?.rules, clusterRole.rules, `the Role in ${namespace}`);
        assert.equal(find(confined, 'RoleBinding', 'nixery-operator', namespace).length, 1);
      }
      const [deployment] = find<V1Deployment>(confined, 'Deployment', 'nixery-operator');
      assert.ok(deployment!.spec!.template.spec!.containers[0]!.args!.includes('--namespaces=nixery,team-a'));
    });

    it('grants the node-config DaemonSets and CA copies in the release namespace only with node config allowed, and all of it only where the watched namespaces leave it out', async () => {
      const roleOf = (objects: KubernetesObject[]) => find<V1Role>(objects, 'Role', 'nixery-operator-node-config', 'nixery')[0];
      assert.equal(roleOf(await render(helm)), undefined, 'not without --allow-node-config');
      const allowed = await render(helm, ['--set', 'operator.allowNodeConfig=true']);
      // The ClusterRole covers the rest; the copies' deletion is the one verb it lacks.
      assert.deepEqual(roleOf(allowed)?.rules, [{ apiGroups: [''], resources: ['configmaps'], verbs: ['delete'] }]);
      assert.deepEqual(find<KubernetesObject & { subjects: unknown[] }>(allowed, 'RoleBinding', 'nixery-operator-node-config', 'nixery')[0]?.subjects, [
        { kind: 'ServiceAccount', name: 'nixery-operator', namespace: 'nixery' },
      ]);
      assert.ok(roleOf(await render(helm, ['--set', 'instance.enabled=true', '--set', 'instance.nodeConfig.enabled=true'])), "the chart's own instance asking for it allows it");
      const elsewhere = await render(helm, ['--set', 'operator.allowNodeConfig=true', '--set-json', 'watchNamespaces=["team-a"]']);
      assert.deepEqual(roleOf(elsewhere)?.rules, [
        { apiGroups: ['apps'], resources: ['daemonsets'], verbs: ['list', 'watch', 'get', 'create', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch', 'get', 'create', 'patch', 'delete'] },
      ]);
    });

    it('renders the default instance with the published registry image, kept on uninstall', async () => {
      const objects = await render(helm, ['--set', 'instance.enabled=true']);
      const [instance] = find<KubernetesObject & { spec: Record<string, unknown> }>(objects, 'NixeryInstance', 'nixery', 'nixery');
      assert.ok(instance);
      assert.equal(instance.metadata!.annotations!['helm.sh/resource-policy'], 'keep');
      assert.deepEqual(instance.spec, {
        image: 'ghcr.io/nixery-operator/nixery:0.1.0',
        replicas: 1,
        port: 8080,
        storage: { persistentVolume: { size: '20Gi', accessModes: ['ReadWriteOnce'] } },
        nixTimeout: 60,
        layerCompression: 'gzip',
        service: { type: 'ClusterIP', port: 5000 },
        onDemand: true,
      });
      const zstd = await render(helm, ['--set', 'instance.enabled=true', '--set', 'instance.layerCompression=zstd']);
      assert.equal(find<KubernetesObject & { spec: Record<string, unknown> }>(zstd, 'NixeryInstance')[0]!.spec.layerCompression, 'zstd');
      const gcs = await render(helm, ['-f', path.join(VALUES_DIR, 'instance-gcs-ha.yaml')]);
      assert.deepEqual(find<KubernetesObject & { spec: { storage: unknown } }>(gcs, 'NixeryInstance')[0]!.spec.storage, {
        gcs: { bucket: 'my-nixery-layers', credentialsSecret: { name: 'nixery-gcs-key', key: 'service-account.json' }, signedUrls: false },
      });
      const s3 = await render(helm, ['-f', path.join(VALUES_DIR, 'instance-s3-ha.yaml')]);
      assert.deepEqual(find<KubernetesObject & { spec: { storage: unknown } }>(s3, 'NixeryInstance')[0]!.spec.storage, {
        s3: {
          bucket: 'nixery-layers',
          region: 'us-east-1',
          endpoint: 'http://rgw.ceph.svc:7480',
          forcePathStyle: true,
          prefix: 'nixery/prod',
          redirect: 'stream',
          credentialsSecret: { name: 'nixery-s3-keys', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' },
        },
      });
      const irsa = await render(helm, ['-f', path.join(VALUES_DIR, 'instance-s3-irsa.yaml')]);
      assert.deepEqual(find<KubernetesObject & { spec: { storage: unknown } }>(irsa, 'NixeryInstance')[0]!.spec.storage, {
        s3: { bucket: 'my-nixery-layers', region: 'eu-west-1', forcePathStyle: false, redirect: 'presigned', roleArn: 'arn:aws:iam::123456789012:role/nixery-registry' },
      });
    });

    it("renders the privilege gates into the operator's flags, and always lets the chart's own instance run", async () => {
      const args = async (values: string[]) => find<V1Deployment>(await render(helm, values), 'Deployment', 'nixery-operator')[0]!.spec!.template.spec!.containers[0]!.args!;
      const gates = async (values: string[]) => (await args(values)).filter((a) => a.startsWith('--allow'));
      assert.deepEqual(await gates([]), [], "no flags: the operator's defaults, no node-local, its own image");
      assert.deepEqual(await gates(['-f', path.join(VALUES_DIR, 'privilege-gates.yaml')]), [
        '--allow-node-local',
        '--allowed-registry-images=registry.example.com/mirror/nixery:*,registry.example.com/mirror/nixery@sha256:*',
      ]);
      // The chart's instance with the default image: the operator's default patterns, once.
      const published = 'ghcr.io/nixery-operator/nixery:*,ghcr.io/nixery-operator/nixery@sha256:*';
      assert.deepEqual(await gates(['--set', 'instance.enabled=true']), [`--allowed-registry-images=${published}`]);
      // Those patterns are the operator's default: the repository of the CRD's default image.
      const crd = fs.readFileSync(path.join(CHART, 'crds/nixery.dev_nixeryinstances.yaml'), 'utf8');
      assert.match(crd, /default: ghcr\.io\/nixery-operator\/nixery:[^\s/]+\n/);
      // Its own repository is added (as install.test.ts installs it), the default kept beside it.
      const mirror = ['--set', 'instance.enabled=true', '--set', 'instance.image.repository=localhost:5001/nixery-operator/nixery'];
      assert.deepEqual(await gates(mirror), [`--allowed-registry-images=${published},localhost:5001/nixery-operator/nixery:*,localhost:5001/nixery-operator/nixery@sha256:*`]);
      // An explicit list replaces the default; the instance's repository still joins it.
      assert.deepEqual(await gates([...mirror, '--set-json', 'operator.allowedRegistryImages=["registry.example.com/**"]']), [
        '--allowed-registry-images=registry.example.com/**,localhost:5001/nixery-operator/nixery:*,localhost:5001/nixery-operator/nixery@sha256:*',
      ]);
      // The chart's instance asking for node-local is the installer asking: the operator allows it.
      assert.ok((await args(['--set', 'instance.enabled=true', '--set', 'instance.nodeLocal.enabled=true'])).includes('--allow-node-local'));
      assert.ok(!(await args(['--set', 'instance.nodeLocal.enabled=true'])).includes('--allow-node-local'), 'no instance of the chart: nothing asked');
    });

    it('renders the on-demand switch and the package lists into the instance, lists only when set', async () => {
      const spec = async (args: string[]) =>
        find<KubernetesObject & { spec: Record<string, unknown> }>(await render(helm, ['--set', 'instance.enabled=true', ...args]), 'NixeryInstance')[0]!.spec;
      const off = await spec(['--set', 'instance.onDemand=false']);
      assert.equal(off.onDemand, false);
      assert.equal(off.packages, undefined, 'empty lists are no lists');
      const lists = await spec(['-f', path.join(VALUES_DIR, 'instance-package-lists.yaml')]);
      assert.equal(lists.onDemand, true);
      assert.deepEqual(lists.packages, {
        allow: ['hello', 'git', 'bashInteractive', 'coreutils', 'moreutils', 'nano', 'python3Packages.*'],
        deny: ['python3Packages.requests', '_7zip'],
      });
      assert.deepEqual((await spec(['--set', 'instance.packages.deny={nano}'])).packages, { deny: ['nano'] });
    });

    it('renders the bounds on on-demand builds into the instance only when set', async () => {
      const spec = async (args: string[]) =>
        find<KubernetesObject & { spec: Record<string, unknown> }>(await render(helm, ['--set', 'instance.enabled=true', ...args]), 'NixeryInstance')[0]!.spec;
      assert.equal((await spec([])).limits, undefined, 'the registry keeps its defaults');
      assert.deepEqual((await spec(['-f', path.join(VALUES_DIR, 'instance-build-limits.yaml')])).limits, { maxQueuedBuilds: 4, clientBuildsPerMinute: 120, maxClosureSize: '4Gi' });
      assert.deepEqual((await spec(['--set', 'instance.limits.maxQueuedBuilds=0'])).limits, { maxQueuedBuilds: 0 });
      assert.deepEqual((await spec(['-f', path.join(VALUES_DIR, 'instance-connection-limits.yaml')])).limits, {
        headersTimeoutSeconds: 10,
        receiveTimeoutSeconds: 300,
        sendStallTimeoutSeconds: 20,
        keepAliveTimeoutSeconds: 15,
        maxConnections: 512,
        minFreeSpace: '5%',
      });
    });

    it('renders TLS and authentication into the instance only when set', async () => {
      const spec = async (args: string[]) =>
        find<KubernetesObject & { spec: Record<string, unknown> }>(await render(helm, ['--set', 'instance.enabled=true', ...args]), 'NixeryInstance')[0]!.spec;
      const plain = await spec([]);
      assert.equal(plain.tls, undefined, 'plain HTTP');
      assert.equal(plain.auth, undefined, 'the CRD defaults: anonymous pulls');
      const private_ = await spec(['-f', path.join(VALUES_DIR, 'instance-tls-auth.yaml')]);
      assert.deepEqual(private_.tls, { selfSigned: {} });
      assert.deepEqual(private_.auth, {
        anonymousPull: false,
        htpasswdSecretRef: { name: 'registry-users', key: 'htpasswd' },
        pullSecretNamespaces: ['team-a', 'team-b'],
        policy: { rules: [{ repositories: ['**'], authenticated: true, actions: ['pull'] }, { repositories: ['team-a/**'], namespaces: ['team-a'], actions: ['pull', 'push'] }] },
      });
      assert.deepEqual((await spec(['--set', 'instance.tls.secretName=registry-cert'])).tls, { secretName: 'registry-cert' });
    });

    it('leaves RBAC, the ServiceAccount and the Lease Role out when asked to', async () => {
      const objects = await render(helm, ['-f', path.join(VALUES_DIR, 'bring-your-own-rbac.yaml')]);
      assert.deepEqual(objects.map((o) => o.kind).sort(), ['Deployment', 'NixeryInstance']);
      const [deployment] = find<V1Deployment>(objects, 'Deployment', 'nixery-controller');
      assert.equal(deployment!.spec!.template.spec!.serviceAccountName, 'nixery-operator-managed');
      assert.ok(deployment!.spec!.template.spec!.containers[0]!.args!.includes('--no-leader-elect'));
      assert.equal(find(objects, 'NixeryInstance')[0]!.metadata!.annotations, undefined, 'keep: false');
    });

    it('renders the metrics Service and the ServiceMonitor together', async () => {
      const objects = await render(helm, ['--set', 'metrics.serviceMonitor.enabled=true']);
      const [service] = find<KubernetesObject & { spec: { ports: { name: string; targetPort: string }[]; selector: Record<string, string> } }>(objects, 'Service', 'nixery-operator-metrics');
      assert.deepEqual(service!.spec.ports.map((p) => [p.name, p.targetPort]), [['metrics', 'metrics']]);
      const [monitor] = find<KubernetesObject & { apiVersion: string; spec: { endpoints: { port: string; path: string }[] } }>(objects, 'ServiceMonitor');
      assert.equal(monitor!.apiVersion, 'monitoring.coreos.com/v1');
      assert.deepEqual(monitor!.spec.endpoints.map((e) => [e.port, e.path]), [['metrics', '/metrics']]);
    });
  });
}

describe('helm 3 and helm 4', () => {
  it('render every values combination identically', async () => {
    const [h4, h3] = HELM_VERSIONS.map((v) => makeHelm(v, home));
    for (const file of valuesFiles()) {
      const args = ['template', 'nixery', CHART, '--namespace', 'nixery', '-f', file];
      assert.deepEqual(parseManifests(await h3!.ok(args)), parseManifests(await h4!.ok(args)), path.basename(file));
    }
  });
});
