// The kubeconfig clients use: cluster, user and context all named `nixery-k8s`. The server
// accepts any bearer token (or none) — there is no authentication or authorization — so the
// token here only keeps clients that insist on credentials happy.
import { stringify } from 'yaml';

export const KUBECONFIG_NAME = 'nixery-k8s';
export const KUBECONFIG_TOKEN = 'nixery-k8s-admin';

export function renderKubeconfig(server: string, caCertPem: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: KUBECONFIG_NAME, cluster: { server, 'certificate-authority-data': Buffer.from(caCertPem).toString('base64') } }],
    users: [{ name: KUBECONFIG_NAME, user: { token: KUBECONFIG_TOKEN } }],
    contexts: [{ name: KUBECONFIG_NAME, context: { cluster: KUBECONFIG_NAME, user: KUBECONFIG_NAME, namespace: 'default' } }],
    'current-context': KUBECONFIG_NAME,
    preferences: {},
  });
}
