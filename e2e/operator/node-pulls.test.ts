// Pulling by the Service's DNS name on a node as strict as a real one (issue #25): the test
// cluster's node resolves registry hosts only as the machine does and speaks plain HTTP only to
// localhost or where containerd's hosts.toml says so. Without spec.nodeConfig such a pull fails as
// on a real node; with it, the operator's DaemonSet writes the hosts.toml files into the node's
// certs directory and the same pull works, over HTTPS with the instance's CA when TLS is on. The
// node-local forwarder (localhost:<hostPort>) is the other path, and runs here too.
//
// The node-config DaemonSet runs as root with hostPath volumes: it lives in the operator's own
// namespace (made by helm, unlabelled: privileged), so the instances' namespace enforces
// `restricted` as the suites' do. The forwarder DaemonSet runs on the host network in its
// instance's namespace: that one has a privileged namespace of its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, freePort, REPO_ROOT } from '@nixery/test-support';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { kubectl, kubectlOk } from '../support/kube.ts';
import { createRestrictedNamespace, restricted } from '../support/pod-security.ts';

const NS = 'node-pulls';
/** The forwarder's instance: hostNetwork pods, so a privileged namespace. */
const FORWARD_NS = 'node-pulls-forward';
const NODE_CONFIG = 'app.kubernetes.io/name=nixery-node-config';
const MARKER = (instance: string) => `# written by nixery node-config for ${NS}/${instance}`;

interface PodStatus {
  status?: { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[] };
}

describe('operator: pods pull by the Service DNS name on a strict node', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let certsDir: string;
  /** The operator's namespace, where the node-config DaemonSets run. */
  let operatorNamespace: string;

  const get = async (args: string[], namespace = NS) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', namespace, '-o', 'json', ...args]));
  const instance = (name: string, spec: object, namespace = NS) =>
    JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name, namespace }, spec: { storage: { persistentVolume: { size: '1Gi' } }, service: { port: 5000 }, ...spec } });
  const runPod = async (name: string, image: string, namespace = NS) => {
    await kubectl(kubeconfig, ['delete', '-n', namespace, `pod/${name}`, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    const pod = restricted({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace }, spec: { restartPolicy: 'Never', containers: [{ name: 'hello', image, command: ['/bin/hello'] }] } });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
  };
  /** The node-config objects of `instance` in `namespace`, by their labels. */
  const nodeConfigObjects = async (kind: string, namespace: string, instanceName: string) =>
    ((await get([kind, '-l', `app.kubernetes.io/instance=${instanceName},nixery.dev/instance-namespace=${NS}`], namespace)).items as { metadata: { name: string } }[]).map((o) => o.metadata.name);
  const succeeds = async (name: string, namespace = NS) => {
    await eventually(`pod ${name} to succeed`, async () => {
      const pod = (await get(['pod', name], namespace)) as PodStatus;
      const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason === 'ErrImagePull' || waiting?.reason === 'ImagePullBackOff') throw new Error(`${waiting.reason}: ${waiting.message}`);
      return pod.status?.phase === 'Succeeded' ? true : undefined;
    }, 180_000, 500);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', namespace, name])).trim(), 'Hello, world!');
  };
  const waitFor = async (condition: string, name: string, namespace = NS) => {
    const result = await kubectl(kubeconfig, ['wait', '-n', namespace, `--for=condition=${condition}`, `nixeryinstance/${name}`, '--timeout=180s']);
    if (result.code !== 0) {
      const status = await kubectl(kubeconfig, ['get', '-n', namespace, `nixeryinstance/${name}`, '-o', 'jsonpath={.status.conditions}']);
      const pods = await kubectl(kubeconfig, ['get', 'pods', '-n', namespace, '-o', 'wide']);
      const agents = await kubectl(kubeconfig, ['get', 'daemonsets,pods', '-n', operatorNamespace, '-l', NODE_CONFIG, '-o', 'wide']);
      assert.fail(`${name} is not ${condition}: ${result.stderr}\n${status.stdout}\n${pods.stdout}\n${agents.stdout}`);
    }
  };

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS, FORWARD_NS], strictNodePulls: true });
    kubeconfig = cluster.kubeconfigPath;
    if (!cluster.certsDir) throw new Error("this suite reads the files node-config writes: NIXERY_E2E_CLUSTER=existing needs NIXERY_E2E_CERTS_DIR, the nodes' /etc/containerd/certs.d");
    certsDir = cluster.certsDir;
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    await createRestrictedNamespace(kubeconfig, NS);
    const forwarding = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: FORWARD_NS, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } };
    await kubectlOk(kubeconfig, ['create', '-f', '-'], JSON.stringify(forwarding));
    operatorNamespace = (await cluster.installOperator({ allowNodeConfig: true, allowNodeLocal: true })).namespace;
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], instance('nixery', {}));
    await waitFor('Ready', 'nixery');
  });
  after(async () => {
    await cluster?.release();
  });

  it('without nodeConfig, a pod naming the Service DNS name fails to pull: the node cannot resolve it', async () => {
    await runPod('by-name', `nixery.${NS}.svc.cluster.local:5000/shell/hello:latest`);
    const message = await eventually('the pull to fail', async () => {
      const waiting = ((await get(['pod', 'by-name'])) as PodStatus).status?.containerStatuses?.[0]?.state?.waiting;
      return waiting?.reason === 'ErrImagePull' ? waiting.message : undefined;
    }, 60_000, 250);
    assert.match(message!, /nixery\.node-pulls\.svc\.cluster\.local.*no such host/);
  });

  it('with nodeConfig, its DaemonSet writes hosts.toml for both Service names and the same pod pulls and runs', async () => {
    await kubectlOk(kubeconfig, ['patch', '-n', NS, 'nixeryinstance/nixery', '--type=merge', '-p', '{"spec":{"nodeConfig":{"enabled":true}}}']);
    await waitFor('NodeConfigReady', 'nixery');
    // In the operator's namespace, not the instance's restricted one (which would refuse its pods).
    const [daemonSet, ...more] = await nodeConfigObjects('daemonsets', operatorNamespace, 'nixery');
    assert.match(daemonSet ?? '', /^nixery-node-config-node-pulls-nixery-[0-9a-f]{8}$/);
    assert.deepEqual(more, []);
    assert.deepEqual((await get(['daemonsets'])).items, [], 'no DaemonSet in the instance namespace');
    assert.equal((await get(['namespace', NS], NS)).metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
    const clusterIP = (await get(['service', 'nixery'])).spec.clusterIP as string;
    for (const host of [`nixery.${NS}.svc.cluster.local:5000`, `nixery.${NS}.svc:5000`]) {
      const toml = await fs.readFile(path.join(certsDir, host, 'hosts.toml'), 'utf8');
      assert.ok(toml.startsWith(MARKER('nixery')), toml);
      assert.match(toml, new RegExp(`^server = "http://${clusterIP.replaceAll('.', '\\.')}:5000"$`, 'm'));
      assert.match(toml, /capabilities = \["pull", "resolve"\]/);
    }
    await runPod('by-name', `nixery.${NS}.svc.cluster.local:5000/shell/hello:latest`);
    await succeeds('by-name');
  });

  it('with TLS, the CA is written beside hosts.toml and the pull verifies it; deleting the instance removes its files', async () => {
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], instance('secure', { tls: { selfSigned: {} }, nodeConfig: { enabled: true } }));
    await waitFor('Ready', 'secure');
    await waitFor('NodeConfigReady', 'secure');
    const caBundle = (await get(['nixeryinstance', 'secure'])).status.tls.caBundle as string;
    const host = `secure.${NS}.svc.cluster.local:5000`;
    const toml = await fs.readFile(path.join(certsDir, host, 'hosts.toml'), 'utf8');
    assert.match(toml, /^server = "https:\/\//m);
    assert.match(toml, /^ca = /m);
    // The marker line, then the instance's CA (PEM readers skip text before BEGIN).
    assert.equal((await fs.readFile(path.join(certsDir, host, 'ca.crt'), 'utf8')).trim(), `${MARKER('secure')}\n${caBundle.trim()}`);
    await runPod('secure-by-name', `${host}/shell/hello:latest`);
    await succeeds('secure-by-name');
    // The CA reaches the pods as a copy beside the DaemonSet: a volume cannot name another namespace's ConfigMap.
    const [copy] = await nodeConfigObjects('configmaps', operatorNamespace, 'secure');
    assert.match(copy ?? '', /^nixery-node-config-node-pulls-secure-[0-9a-f]{8}-ca$/);
    assert.equal((await get(['configmap', copy!], operatorNamespace)).data['ca.crt'], caBundle);
    assert.equal((await nodeConfigObjects('daemonsets', operatorNamespace, 'secure')).length, 1);

    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'pod/secure-by-name', '--wait=true', '--timeout=60s']);
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/secure', '--wait=true', '--timeout=120s']);
    await eventually('the files of the deleted instance to go', async () => {
      const left = await fs.readdir(path.join(certsDir, host)).catch(() => []);
      return left.length === 0 ? true : undefined;
    }, 60_000, 500);
    assert.ok((await fs.readFile(path.join(certsDir, `nixery.${NS}.svc.cluster.local:5000`, 'hosts.toml'), 'utf8')).startsWith(MARKER('nixery')), "the other instance's stay");
    // The finalizer took the DaemonSet and the CA copy from the operator's namespace.
    assert.deepEqual(await nodeConfigObjects('daemonsets', operatorNamespace, 'secure'), []);
    assert.deepEqual(await nodeConfigObjects('configmaps', operatorNamespace, 'secure'), []);
    assert.equal((await nodeConfigObjects('daemonsets', operatorNamespace, 'nixery')).length, 1);
  });

  it('the node-local forwarder: a pod pulls localhost:<hostPort>/<packages>:<tag> through its DaemonSet', async () => {
    const port = await freePort();
    // In its instance's namespace (hostNetwork): the privileged one.
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], instance('nixery', { nodeLocal: { enabled: true, hostPort: port } }, FORWARD_NS));
    await waitFor('Ready', 'nixery', FORWARD_NS);
    await waitFor('NodeLocalReady', 'nixery', FORWARD_NS);
    await runPod('via-localhost', `localhost:${port}/shell/hello:latest`, FORWARD_NS);
    await succeeds('via-localhost', FORWARD_NS);
  });

  it('turning nodeConfig off deletes its DaemonSet in the operator namespace, and its pods remove their files', async () => {
    await kubectlOk(kubeconfig, ['patch', '-n', NS, 'nixeryinstance/nixery', '--type=merge', '-p', '{"spec":{"nodeConfig":{"enabled":false}}}']);
    await eventually('the DaemonSet to go', async () => ((await nodeConfigObjects('daemonsets', operatorNamespace, 'nixery')).length === 0 ? true : undefined), 60_000, 500);
    await eventually('the files to go', async () => {
      const left = await fs.readdir(path.join(certsDir, `nixery.${NS}.svc.cluster.local:5000`)).catch(() => []);
      return left.length === 0 ? true : undefined;
    }, 60_000, 500);
  });
});
