// What a real cluster needs before its pods pull from a NixeryInstance by the Service's DNS name:
// the nodes' containerd must be told (hosts.toml) that the name is served at the Service's
// ClusterIP. The operator does it with spec.nodeConfig (its DaemonSet in the operator's namespace,
// installed with allowNodeConfig); this turns it on for an instance and waits until every node is
// configured. The test cluster's node pulls as strictly as a real one, so the suites need it too.
import { kubectl, kubectlOk } from './kube.ts';

/** Turns on spec.nodeConfig of `namespace/name` and waits for NodeConfigReady (its hosts.toml on every node). */
export async function enableNodeConfig(kubeconfig: string, namespace: string, name: string, timeoutSeconds = 180): Promise<void> {
  await kubectlOk(kubeconfig, ['patch', '-n', namespace, `nixeryinstance/${name}`, '--type=merge', '-p', JSON.stringify({ spec: { nodeConfig: { enabled: true } } })]);
  await waitForNodeConfig(kubeconfig, namespace, name, timeoutSeconds);
}

/** Waits for NodeConfigReady of `namespace/name`; failing, says what the instance's conditions are. */
export async function waitForNodeConfig(kubeconfig: string, namespace: string, name: string, timeoutSeconds = 180): Promise<void> {
  const result = await kubectl(kubeconfig, ['wait', '-n', namespace, '--for=condition=NodeConfigReady', `nixeryinstance/${name}`, `--timeout=${timeoutSeconds}s`]);
  if (result.code !== 0) {
    const conditions = await kubectl(kubeconfig, ['get', '-n', namespace, `nixeryinstance/${name}`, '-o', 'jsonpath={.status.conditions}']);
    throw new Error(`nixeryinstance ${namespace}/${name} is not NodeConfigReady: ${result.stderr}\n${conditions.stdout}`);
  }
}
