// The operator as users run it: installed with the chart, in the cluster, with its own service
// account. It reaches registries by their ClusterIPs, which only works from inside a cluster, so
// the suites run it there against the test cluster and a real one alike.
import { CHART, makeHelm } from '../chart/support.ts';
import { eventually } from '@nixery/test-support';
import { kubectl, kubectlOk } from './kube.ts';

/** The operator image; the test cluster runs this checkout's operator for the published name. */
export const OPERATOR_IMAGE = process.env.NIXERY_E2E_OPERATOR_IMAGE ?? 'ghcr.io/nixery-operator/operator:0.1.0';

export interface OperatorOptions {
  /** --namespaces: the operator watches only these (the chart then grants Roles there). */
  namespaces?: string[];
  /** --allow-node-config: instances may write the nodes' runtime configuration (spec.nodeConfig). */
  allowNodeConfig?: boolean;
  /** --allow-node-local: instances may run the node-local forwarder (spec.nodeLocal). */
  allowNodeLocal?: boolean;
}

export interface OperatorDeployment {
  namespace: string;
  /** Force-deletes the running operator pod, as a crash would, and waits for its replacement. */
  kill(): Promise<void>;
  /** Changes the operator's settings (a helm upgrade) and waits until the new pod is working. */
  reconfigure(options: OperatorOptions): Promise<void>;
  logs(): Promise<string>;
  uninstall(): Promise<void>;
}

const RELEASE = 'nixery-e2e';
const SELECTOR = 'app.kubernetes.io/name=nixery-operator';

export async function installOperator(kubeconfig: string, namespace: string, workDir: string, options: OperatorOptions = {}): Promise<OperatorDeployment> {
  const helm = makeHelm(4, workDir, kubeconfig);
  const [repository, tag] = splitImage(OPERATOR_IMAGE);
  const values = (o: OperatorOptions) => [
    '--set', `image.repository=${repository}`,
    '--set', `image.tag=${tag}`,
    // Resyncs often enough that a test sees a few of them in seconds.
    '--set', 'operator.resyncSeconds=2',
    '--set-json', `watchNamespaces=${JSON.stringify(o.namespaces ?? [])}`,
    ...(o.allowNodeConfig ? ['--set', 'operator.allowNodeConfig=true'] : []),
    ...(o.allowNodeLocal ? ['--set', 'operator.allowNodeLocal=true'] : []),
  ];
  await helm.ok(['install', RELEASE, CHART, '--namespace', namespace, '--create-namespace', '--skip-crds', ...values(options)]);
  await waitWorking(kubeconfig, namespace, []);
  return {
    namespace,
    async kill() {
      const before = await podNames(kubeconfig, namespace);
      await kubectlOk(kubeconfig, ['delete', 'pod', '-n', namespace, '-l', SELECTOR, '--grace-period=0', '--force', '--wait=false']);
      await waitWorking(kubeconfig, namespace, before);
    },
    async reconfigure(next) {
      const before = await podNames(kubeconfig, namespace);
      await helm.ok(['upgrade', RELEASE, CHART, '--namespace', namespace, '--skip-crds', ...values(next)]);
      await waitWorking(kubeconfig, namespace, before);
    },
    logs: async () => (await kubectl(kubeconfig, ['logs', '-n', namespace, '-l', SELECTOR, '--tail=-1'])).stdout,
    uninstall: async () => {
      await helm.ok(['uninstall', RELEASE, '--namespace', namespace, '--wait', '--timeout', '120s']);
    },
  };
}

function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(':');
  if (at <= image.lastIndexOf('/')) throw new Error(`NIXERY_E2E_OPERATOR_IMAGE must name a tag: ${image}`);
  return [image.slice(0, at), image.slice(at + 1)];
}

interface OperatorPod {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { phase?: string };
}

async function operatorPods(kubeconfig: string, namespace: string): Promise<OperatorPod[]> {
  return (JSON.parse(await kubectlOk(kubeconfig, ['get', 'pods', '-n', namespace, '-l', SELECTOR, '-o', 'json'])) as { items: OperatorPod[] }).items;
}

async function podNames(kubeconfig: string, namespace: string): Promise<string[]> {
  return (await operatorPods(kubeconfig, namespace)).map((p) => p.metadata.name);
}

/**
 * Until a pod that is none of `previous` runs and has synced its caches (it logs that once it
 * leads: before, it only waits for the Lease).
 */
async function waitWorking(kubeconfig: string, namespace: string, previous: string[]): Promise<void> {
  await eventually('the operator pod to lead with synced caches', async () => {
    for (const pod of await operatorPods(kubeconfig, namespace)) {
      if (previous.includes(pod.metadata.name) || pod.metadata.deletionTimestamp || pod.status?.phase !== 'Running') continue;
      const logs = await kubectl(kubeconfig, ['logs', '-n', namespace, pod.metadata.name]);
      if (/caches synced/.test(logs.stdout)) return true;
    }
    return undefined;
  }, 180_000, 500);
}
