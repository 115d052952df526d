// Pulling by the Service's DNS name on a node as strict as a real one (issue #25): the test
// cluster's node resolves registry hosts only as the machine does and speaks plain HTTP only to
// localhost or where containerd's hosts.toml says so. Without spec.nodeConfig such a pull fails as
// on a real node; with it, the operator's DaemonSet writes the hosts.toml files into the node's
// certs directory and the same pull works, over HTTPS with the instance's CA when TLS is on. The
// node-local forwarder (localhost:<hostPort>) is the other path, and runs here too.
//
// The DaemonSets run as root with hostPath volumes (node-config) or on the host network
// (forwarder): their namespace is labelled privileged, unlike the suites' restricted ones.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, freePort, REPO_ROOT } from '@nixery/test-support';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { kubectl, kubectlOk } from '../support/kube.ts';
import { restricted } from '../support/pod-security.ts';

const NS = 'node-pulls';
const MARKER = (instance: string) => `# written by nixery node-config for ${NS}/${instance}`;

interface PodStatus {
  status?: { phase?: string; containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[] };
}

describe('operator: pods pull by the Service DNS name on a strict node', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let certsDir: string;

  const get = async (args: string[]) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', NS, '-o', 'json', ...args]));
  const instance = (name: string, spec: object) =>
    JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name, namespace: NS }, spec: { storage: { persistentVolume: { size: '1Gi' } }, service: { port: 5000 }, ...spec } });
  const runPod = async (name: string, image: string) => {
    await kubectl(kubeconfig, ['delete', '-n', NS, `pod/${name}`, '--ignore-not-found', '--wait=true', '--timeout=60s']);
    const pod = restricted({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { restartPolicy: 'Never', containers: [{ name: 'hello', image, command: ['/bin/hello'] }] } });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod));
  };
  const succeeds = async (name: string) => {
    await eventually(`pod ${name} to succeed`, async () => {
      const pod = (await get(['pod', name])) as PodStatus;
      const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason === 'ErrImagePull' || waiting?.reason === 'ImagePullBackOff') throw new Error(`${waiting.reason}: ${waiting.message}`);
      return pod.status?.phase === 'Succeeded' ? true : undefined;
    }, 180_000, 500);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', NS, name])).trim(), 'Hello, world!');
  };
  const waitFor = async (condition: string, name: string) => {
    const result = await kubectl(kubeconfig, ['wait', '-n', NS, `--for=condition=${condition}`, `nixeryinstance/${name}`, '--timeout=180s']);
    if (result.code !== 0) {
      const status = await kubectl(kubeconfig, ['get', '-n', NS, `nixeryinstance/${name}`, '-o', 'jsonpath={.status.conditions}']);
      const pods = await kubectl(kubeconfig, ['get', 'pods', '-n', NS, '-o', 'wide']);
      assert.fail(`${name} is not ${condition}: ${result.stderr}\n${status.stdout}\n${pods.stdout}`);
    }
  };

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS], strictNodePulls: true });
    kubeconfig = cluster.kubeconfigPath;
    if (!cluster.certsDir) throw new Error("this suite reads the files node-config writes: NIXERY_E2E_CLUSTER=existing needs NIXERY_E2E_CERTS_DIR, the nodes' /etc/containerd/certs.d");
    certsDir = cluster.certsDir;
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } };
    await kubectlOk(kubeconfig, ['create', '-f', '-'], JSON.stringify(namespace));
    await cluster.installOperator({ allowNodeConfig: true, allowNodeLocal: true });
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

    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'pod/secure-by-name', '--wait=true', '--timeout=60s']);
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/secure', '--wait=true', '--timeout=120s']);
    await eventually('the files of the deleted instance to go', async () => {
      const left = await fs.readdir(path.join(certsDir, host)).catch(() => []);
      return left.length === 0 ? true : undefined;
    }, 60_000, 500);
    assert.ok((await fs.readFile(path.join(certsDir, `nixery.${NS}.svc.cluster.local:5000`, 'hosts.toml'), 'utf8')).startsWith(MARKER('nixery')), "the other instance's stay");
  });

  it('the node-local forwarder: a pod pulls localhost:<hostPort>/<packages>:<tag> through its DaemonSet', async () => {
    const port = await freePort();
    await kubectlOk(kubeconfig, ['patch', '-n', NS, 'nixeryinstance/nixery', '--type=merge', '-p', JSON.stringify({ spec: { nodeLocal: { enabled: true, hostPort: port } } })]);
    await waitFor('NodeLocalReady', 'nixery');
    await runPod('via-localhost', `localhost:${port}/shell/hello:latest`);
    await succeeds('via-localhost');
  });
});
