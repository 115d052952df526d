// Cluster access: in-cluster configuration inside a pod, KUBECONFIG (or ~/.kube/config) outside.
import { ApisApi, AppsV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import fs from 'node:fs';

export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (env.KUBERNETES_SERVICE_HOST && fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  return kc;
}

/** The namespace of the operator itself (for its Lease): the pod's, else POD_NAMESPACE, else default. */
export function operatorNamespace(env: NodeJS.ProcessEnv = process.env): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'default';
  }
}

/** The generated API clients the reconcilers call, made once by the manager and shared. */
export interface ApiClients {
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  customObjects: CustomObjectsApi;
  rbac: RbacAuthorizationV1Api;
  /** Discovery of API groups (whether cert-manager is installed). */
  apis: ApisApi;
}

export function makeApiClients(kc: KubeConfig): ApiClients {
  return {
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    batch: kc.makeApiClient(BatchV1Api),
    customObjects: kc.makeApiClient(CustomObjectsApi),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    apis: kc.makeApiClient(ApisApi),
  };
}
