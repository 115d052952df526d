// The kubeconfig clients use: cluster, user and context all named `nixery-k8s`. Its token is the
// cluster admin's (user `admin`, see auth.ts); nothing is authorized by identity, but the request
// log says who made each request.
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
