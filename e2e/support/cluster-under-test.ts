// The cluster a Kubernetes suite runs against: by default a test cluster of its own
// (k8s-harness/), or, with NIXERY_E2E_CLUSTER=existing, the real cluster KUBECONFIG points at. The
// suites use only what works on both: kubectl and helm with the kubeconfig, Services reached
// through the API server's service proxy, the API server's audit log as the record of requests,
// and namespaces the suite declares up front and removes again.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster, type RequestLogEntry } from '@nixery/k8s-harness';
import { AuditLog } from './audit-log.ts';
import { kubectl } from './kube.ts';
import { installOperator, type OperatorDeployment, type OperatorOptions } from './operator-deployment.ts';
import { forwardService, type ServiceForwarder } from './service-forwarder.ts';

export type ClusterMode = 'test-cluster' | 'existing';

export interface ClusterUnderTest {
  mode: ClusterMode;
  kubeconfigPath: string;
  /** Scratch space on this machine for the suite (helm's home, manifests). */
  workDir: string;
  /** Every API request since the suite started, from the API server's audit log. */
  requests(): Promise<RequestLogEntry[]>;
  /** host:port on loopback that reaches the Service's port (through the API server). */
  serviceHost(namespace: string, service: string, port: number | string): Promise<string>;
  /** Installs the operator with the chart in its own namespace. */
  installOperator(options?: OperatorOptions): Promise<OperatorDeployment>;
  /**
   * Tells the nodes' containerd where the registry `host` (`name:port`, e.g. a Service's DNS name,
   * which no node resolves) is served, as a cluster admin does by hand: `<certs dir>/<host>/hosts.toml`
   * with `server` as the endpoint for pulls (e.g. `http://<ClusterIP>:<port>`) and, given `caPem`,
   * a `ca.crt` beside it that the endpoint is verified with. The test cluster's node reads its own
   * certs dir; a real cluster's must be NIXERY_E2E_CERTS_DIR, a directory its nodes' containerd
   * reads as config_path (a shared mount, say). The operator's spec.nodeConfig does the same.
   */
  writeRegistryHosts(host: string, server: string, caPem?: string): Promise<void>;
  /** The nodes' registry hosts directory (containerd's certs.d, the test cluster's --certs-dir), if known here. */
  certsDir: string | undefined;
  /** Removes what the suite made and, for a test cluster, the cluster itself. */
  release(): Promise<void>;
}

export interface ClusterRequest {
  /** Namespaces the suite creates (itself or through helm): they must not exist yet, and are deleted at the end. */
  namespaces: string[];
  /**
   * Whether the test cluster's node pulls as a containerd node does: registry hosts resolved only
   * by the machine (no Service names), plain HTTP only for localhost or where hosts.toml says.
   * Default: yes (the harness's default), as a real cluster's nodes do anyway.
   */
  strictNodePulls?: boolean;
}

const OPERATOR_NAMESPACE = 'nixery-e2e-operator';

export function clusterMode(): ClusterMode {
  const mode = process.env.NIXERY_E2E_CLUSTER ?? 'test-cluster';
  if (mode !== 'test-cluster' && mode !== 'existing') throw new Error(`NIXERY_E2E_CLUSTER must be test-cluster or existing, not ${mode}`);
  return mode;
}

export async function acquireCluster(request: ClusterRequest): Promise<ClusterUnderTest> {
  const mode = clusterMode();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-e2e-'));
  const namespaces = [...request.namespaces, OPERATOR_NAMESPACE];
  let kubeconfigPath: string;
  let auditLogPath: string;
  let certsDir: string | undefined;
  let cluster: Cluster | undefined;
  if (mode === 'existing') {
    kubeconfigPath = requiredEnv('KUBECONFIG', 'the kubeconfig of the cluster to test against');
    auditLogPath = requiredEnv('NIXERY_E2E_AUDIT_LOG', "the API server's audit log (--audit-log-path, Metadata level or more), readable here");
    certsDir = process.env.NIXERY_E2E_CERTS_DIR;
    const version = await kubectl(kubeconfigPath, ['version', '-o', 'json']);
    if (version.code !== 0) throw new Error(`the cluster of ${kubeconfigPath} does not answer: ${version.stderr}`);
    for (const namespace of namespaces) {
      if ((await kubectl(kubeconfigPath, ['get', 'namespace', namespace])).code === 0) {
        throw new Error(`namespace ${namespace} already exists in the cluster of ${kubeconfigPath}: this suite creates and deletes it, so delete it first`);
      }
    }
  } else {
    auditLogPath = path.join(workDir, 'audit.log');
    certsDir = path.join(workDir, 'certs.d');
    await fs.mkdir(certsDir);
    cluster = await startCluster({ dataDir: path.join(workDir, 'cluster'), auditLogPath, certsDir, ...(request.strictNodePulls !== undefined ? { strictNodePulls: request.strictNodePulls } : {}) });
    kubeconfigPath = cluster.kubeconfigPath;
  }
  const audit = await AuditLog.from(auditLogPath);
  const forwarders = new Map<string, Promise<ServiceForwarder>>();
  let operator: OperatorDeployment | undefined;
  /** The registry host directories written into the certs dir, removed again at the end. */
  const trusted: string[] = [];

  return {
    mode,
    kubeconfigPath,
    workDir,
    requests: () => audit.requests(),
    certsDir,
    async serviceHost(namespace, service, port) {
      const key = `${namespace}/${service}:${port}`;
      if (!forwarders.has(key)) forwarders.set(key, forwardService(kubeconfigPath, namespace, service, port));
      return (await forwarders.get(key)!).host;
    },
    async installOperator(options) {
      if (operator) throw new Error('the operator is installed already: reconfigure it');
      operator = await installOperator(kubeconfigPath, OPERATOR_NAMESPACE, workDir, options);
      return operator;
    },
    async writeRegistryHosts(host, server, caPem) {
      if (!certsDir) throw new Error("NIXERY_E2E_CLUSTER=existing needs NIXERY_E2E_CERTS_DIR for this suite: a directory the nodes' containerd reads as config_path");
      const dir = path.join(certsDir, host);
      await fs.mkdir(dir, { recursive: true });
      trusted.push(dir);
      if (caPem !== undefined) await fs.writeFile(path.join(dir, 'ca.crt'), caPem);
      // A relative ca is read from the host's directory, wherever the nodes mount it.
      await fs.writeFile(path.join(dir, 'hosts.toml'), registryHostsToml(server, caPem !== undefined));
    },
    async release() {
      for (const forwarder of forwarders.values()) await (await forwarder.catch(() => undefined))?.close();
      if (cluster) {
        await cluster.stop();
      } else {
        // NixImages carry a finalizer the operator removes: delete them while it still runs.
        for (const namespace of request.namespaces) {
          await kubectl(kubeconfigPath, ['delete', 'niximages,nixeryinstances', '--all', '-n', namespace, '--timeout=120s']);
        }
        await operator?.uninstall();
        for (const namespace of namespaces) {
          const result = await kubectl(kubeconfigPath, ['delete', 'namespace', namespace, '--ignore-not-found', '--wait=true', '--timeout=300s']);
          if (result.code !== 0) throw new Error(`could not delete namespace ${namespace}: ${result.stderr}`);
        }
      }
      for (const dir of trusted) await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(workDir, { recursive: true, force: true });
    },
  };
}

/** containerd's hosts.toml for one endpoint that pulls and resolves. */
export function registryHostsToml(server: string, withCa: boolean): string {
  return `server = ${JSON.stringify(server)}\n\n[host.${JSON.stringify(server)}]\n  capabilities = ["pull", "resolve"]\n${withCa ? '  ca = "ca.crt"\n' : ''}`;
}

function requiredEnv(name: string, what: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`NIXERY_E2E_CLUSTER=existing needs ${name}: ${what}`);
  return value;
}

