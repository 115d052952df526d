// Operator, issue 19 end to end: a private registry. An instance with a self-signed certificate and
// anonymous pulls off; a NixImage builds and pushes with its build ServiceAccount's projected token;
// a pod in another namespace pulls the image by the Service's name with the operator's pull Secret
// on a node as strict as a real one: spec.nodeConfig writes containerd's hosts.toml (the ClusterIP,
// over HTTPS, trusting the CA from status.tls.caBundle), and the pull Secret's credentials reach
// that ClusterIP endpoint as containerd gives them; the registry's request log shows that the pull
// user pulled and nothing used the static push token. Runs against the test cluster or, with
// NIXERY_E2E_CLUSTER=existing, a real one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { eventually, REPO_ROOT } from '@nixery/test-support';
import { kubectl, kubectlOk } from '../support/kube.ts';
import type { OperatorDeployment } from '../support/operator-deployment.ts';
import { createRestrictedNamespace, restricted } from '../support/pod-security.ts';
import { waitForNodeConfig } from '../support/node-config.ts';

const NS = 'private-reg';
const APPS = 'apps';
const ENDPOINT = `nixery.${NS}.svc.cluster.local:5000`;

interface LogLine {
  msg?: string;
  method?: string;
  path?: string;
  status?: number;
  identity?: string;
}

describe('operator: a private registry (TLS, logins, projected push tokens)', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let operator: OperatorDeployment;

  const get = async (args: string[], namespace = NS) => JSON.parse(await kubectlOk(kubeconfig, ['get', '-n', namespace, '-o', 'json', ...args]));
  const condition = (object: { status?: { conditions?: { type: string; status: string; reason?: string }[] } }, type: string) =>
    object.status?.conditions?.find((c) => c.type === type);
  /** What the cluster looks like, for a failure message that says why. */
  const explain = async () => {
    const state = await kubectl(kubeconfig, ['get', '-n', NS, 'nixeryinstances,niximages,jobs,pods', '-o', 'wide']);
    const conditions = await kubectl(kubeconfig, ['get', '-n', NS, 'nixeryinstances,niximages', '-o', 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}']);
    const registry = (await registryLog()).filter((l) => /"level":"(warn|error)"/.test(JSON.stringify(l))).slice(-20);
    return `${state.stdout}${state.stderr}\n${conditions.stdout}\noperator:\n${(await operator.logs()).split('\n').slice(-40).join('\n')}\nregistry warnings and errors:\n${registry.map((l) => JSON.stringify(l)).join('\n')}`;
  };
  const waitOrExplain = async (namespace: string, args: string[]) => {
    const result = await kubectl(kubeconfig, ['wait', '-n', namespace, ...args]);
    if (result.code !== 0) assert.fail(`kubectl wait ${args.join(' ')}: ${result.stderr}\n${await explain()}`);
  };
  const registryLog = async (): Promise<LogLine[]> => {
    const logs = await kubectl(kubeconfig, ['logs', '-n', NS, 'deployment/nixery', '--tail=-1']);
    return logs.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  };

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS, APPS] });
    kubeconfig = cluster.kubeconfigPath;
    await kubectlOk(kubeconfig, ['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    for (const namespace of [NS, APPS]) await createRestrictedNamespace(kubeconfig, namespace);
    operator = await cluster.installOperator({ allowNodeConfig: true });
    const instance = {
      apiVersion: 'nixery.dev/v1alpha1',
      kind: 'NixeryInstance',
      metadata: { name: 'nixery', namespace: NS },
      spec: {
        storage: { persistentVolume: { size: '1Gi' } },
        tls: { selfSigned: {} },
        auth: { anonymousPull: false, pullSecretNamespaces: [APPS] },
        nodeConfig: { enabled: true },
      },
    };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(instance));
    await waitOrExplain(NS, ['--for=condition=Ready', 'nixeryinstance/nixery', '--timeout=180s']);
  });
  after(async () => {
    await cluster?.release();
  });

  it('takes exactly one TLS mode', async () => {
    const bad = (tls: object) => JSON.stringify({ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', metadata: { name: 'bad', namespace: NS }, spec: { tls } });
    for (const tls of [{}, { selfSigned: {}, secretName: 'cert' }]) {
      const result = await kubectl(kubeconfig, ['apply', '-f', '-'], bad(tls));
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /tls takes exactly one of secretName, issuerRef and selfSigned/);
    }
  });

  it('serves HTTPS with a certificate of its own CA, which status.tls.caBundle gives the nodes to trust', async () => {
    const instance = await get(['nixeryinstance', 'nixery']);
    assert.equal(condition(instance, 'TLSReady')?.status, 'True');
    assert.equal(instance.status.endpoint, ENDPOINT);
    const caBundle = instance.status.tls.caBundle as string;
    const ca = new X509Certificate(caBundle);
    assert.equal(ca.ca, true);
    const serving = await get(['secret', 'nixery-tls']);
    assert.equal(serving.type, 'kubernetes.io/tls');
    const cert = new X509Certificate(Buffer.from(serving.data['tls.crt'], 'base64'));
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA in status');
    for (const name of ['nixery', `nixery.${NS}`, `nixery.${NS}.svc`, `nixery.${NS}.svc.cluster.local`, 'localhost']) {
      assert.ok(cert.subjectAltName!.includes(`DNS:${name}`), `the certificate is for ${name}: ${cert.subjectAltName}`);
    }
    const configMap = await get(['configmap', instance.status.tls.caConfigMap]);
    assert.equal(configMap.data['ca.crt'], caBundle);
    const binding = JSON.parse(await kubectlOk(kubeconfig, ['get', 'clusterrolebinding', `nixery.${NS}.nixery.auth-delegator`, '-o', 'json']));
    assert.equal(binding.roleRef.name, 'system:auth-delegator');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'nixery', namespace: NS }]);
    // node-config's part: containerd's hosts.toml on every node, the ClusterIP over HTTPS trusting that CA.
    await waitForNodeConfig(kubeconfig, NS, 'nixery');
  });

  it('builds a NixImage that pushes with its projected ServiceAccount token, granted its own repository', async () => {
    const image = { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', metadata: { name: 'toolbox', namespace: NS }, spec: { instanceRef: { name: 'nixery' }, packages: ['hello'], tag: 'v1' } };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(image));
    await waitOrExplain(NS, ['--for=condition=Ready', 'niximage/toolbox', '--timeout=300s']);
    const built = await get(['niximage', 'toolbox']);
    assert.match(built.status.digest, /^sha256:[a-f0-9]{64}$/);
    const job = await get(['job', built.status.jobName]);
    const pod = job.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'nixery-build-toolbox');
    assert.deepEqual(pod.volumes.find((v: { name: string }) => v.name === 'identity').projected.sources, [
      { serviceAccountToken: { audience: `nixery.dev/${NS}/nixery`, expirationSeconds: 600, path: 'token' } },
    ]);
    assert.ok(!JSON.stringify(pod).includes('push-token'), 'no static secret in the build pod');
    assert.ok(pod.containers[0].args.includes('--push-ca-file'));
    const policy = JSON.parse((await get(['configmap', 'nixery-auth-policy'])).data['policy.json']);
    assert.deepEqual(
      policy.rules.filter((r: { serviceAccounts?: string[] }) => r.serviceAccounts),
      [{ repositories: ['toolbox'], serviceAccounts: [`${NS}/nixery-build-toolbox`], actions: ['pull', 'push', 'delete'], overOnDemandNames: true }],
    );
  });

  it("runs a pod in another namespace from the image, pulled through the ClusterIP with the operator's pull Secret; without it the pull is refused", async () => {
    const secret = await get(['secret', 'nixery-pull'], APPS);
    assert.equal(secret.type, 'kubernetes.io/dockerconfigjson');
    assert.deepEqual(Object.keys(JSON.parse(Buffer.from(secret.data['.dockerconfigjson'], 'base64').toString()).auths), [ENDPOINT]);
    const pod = (name: string, pullSecret: boolean) => restricted({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: APPS },
      spec: {
        restartPolicy: 'Never',
        ...(pullSecret ? { imagePullSecrets: [{ name: 'nixery-pull' }] } : {}),
        // Always: an image already on the node would otherwise run without asking the registry.
        containers: [{ name: 'hello', image: `${ENDPOINT}/toolbox:v1`, imagePullPolicy: 'Always', command: ['/bin/hello'] }],
      },
    });
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod('with-secret', true)));
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], JSON.stringify(pod('without-secret', false)));
    await eventually('the pod with the pull Secret to succeed', async () => ((await get(['pod', 'with-secret'], APPS)).status.phase === 'Succeeded' ? true : undefined), 120_000, 500);
    assert.equal((await kubectlOk(kubeconfig, ['logs', '-n', APPS, 'with-secret'])).trim(), 'Hello, world!');
    let last: unknown;
    const refused = await eventually('the pod without it to fail its pull', async () => {
      const status = (await get(['pod', 'without-secret'], APPS)).status;
      last = status;
      const waiting = status.containerStatuses?.[0]?.state?.waiting;
      return waiting && /ErrImagePull|ImagePullBackOff/.test(waiting.reason) ? waiting : undefined;
    }, 60_000, 500).catch((error: Error) => assert.fail(`${error.message}: ${JSON.stringify(last)}`));
    assert.match(refused.message ?? '', /401|unauthorized|authentication/i, JSON.stringify(refused));
  });

  it("shows in the registry's request log who did what: the build's ServiceAccount pushed, the pull user pulled, and the static token did nothing", async () => {
    const lines = (await registryLog()).filter((l) => l.identity !== undefined);
    const pushes = lines.filter((l) => l.method === 'PUT' && l.path?.includes('/manifests/'));
    assert.ok(pushes.length > 0, 'the push is in the log');
    assert.deepEqual([...new Set(pushes.map((l) => l.identity))], [`system:serviceaccount:${NS}:nixery-build-toolbox`]);
    assert.ok(lines.some((l) => l.identity === 'user:nixery-operator-pull' && l.method === 'GET' && l.path?.includes('/toolbox/manifests/')), 'the pod pulled as the pull user');
    assert.deepEqual(lines.filter((l) => l.identity === 'admin'), [], 'no request used the static push token');
  });

  it('takes its pull Secrets and its ClusterRoleBinding along when the instance goes', async () => {
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'niximage/toolbox', '--timeout=60s']);
    await kubectlOk(kubeconfig, ['delete', '-n', NS, 'nixeryinstance/nixery', '--timeout=60s']);
    await eventually('the pull Secret and the binding to go', async () => {
      const secret = await kubectl(kubeconfig, ['get', '-n', APPS, 'secret/nixery-pull']);
      const binding = await kubectl(kubeconfig, ['get', 'clusterrolebinding', `nixery.${NS}.nixery.auth-delegator`]);
      return secret.code !== 0 && binding.code !== 0 ? true : undefined;
    }, 60_000, 500);
  });
});
