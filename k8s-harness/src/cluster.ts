// The Kubernetes test cluster: the API server and one node agent (kubelet, Deployment/Job
// controllers, Service proxies), with this repository's programs standing in for its images.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@nixery/test-support';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { startNodeAgent, type ImageMapping, type NodeAgent } from './node/index.ts';
import { claimClusterIpRange } from './ip-range.ts';

/** The project's published image names, run from the built programs of this checkout. */
export const PROJECT_IMAGES: ImageMapping[] = [
  { image: 'ghcr.io/nixery-operator/nixery', command: [process.execPath, path.join(REPO_ROOT, 'registry/bin/nixery.js')] },
  { image: 'ghcr.io/nixery-operator/operator', command: [process.execPath, path.join(REPO_ROOT, 'operator/bin/nixery-operator.js')] },
];

export interface ClusterOptions {
  /** Objects, pod directories and volumes live here; a restart with the same directory keeps the objects. */
  dataDir?: string;
  kubeconfigPath?: string;
  port?: number;
  imageMap?: ImageMapping[];
  /** A /16 inside 127.0.0.0/8 for Service ClusterIPs; default: the first one no other running cluster holds. */
  clusterIpRange?: string;
  log?: (line: object) => void;
  /** Append the API server's audit events here (JSON lines), as kube-apiserver's --audit-log-path. */
  auditLogPath?: string;
  /** How often running pods' Secret and ConfigMap volumes are brought up to date; default 2000 (a kubelet: about a minute). */
  volumeSyncPeriodMs?: number;
  /**
   * The node's registry hosts directory, as containerd's `config_path` (`--certs-dir` of
   * nixery-k8s-harness): `<certsDir>/<host:port>/hosts.toml` or `<certsDir>/<host:port>/ca.crt`, read at each pull.
   */
  certsDir?: string;
  /**
   * Pull images as a containerd node does (`--strict-node-pulls`): registry hosts resolved only by
   * this machine's resolver — a Service's DNS name fails (`ErrImagePull`, `… lookup <name>: no such
   * host`) unless a hosts.toml in `certsDir` names an endpoint the node reaches (its ClusterIP) —
   * and plain HTTP only for localhost or `http://` endpoints. Default DEFAULT_STRICT_NODE_PULLS
   * (src/node/puller.ts): true; `false` resolves Service names when pulling, which no real node does.
   */
  strictNodePulls?: boolean;
}

export interface Cluster {
  kubeconfigPath: string;
  dataDir: string;
  clusterIpRange: string;
  apiServer: ApiServer;
  node: NodeAgent;
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const dataDir = options.dataDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-k8s-')));
  const kubeconfigPath = options.kubeconfigPath ?? path.join(dataDir, 'kubeconfig');
  const claimed = options.clusterIpRange ? { range: options.clusterIpRange, release: async () => {} } : await claimClusterIpRange();
  const apiServer = await startApiServer({
    dataDir: path.join(dataDir, 'apiserver'),
    kubeconfigPath,
    serviceClusterIpRange: claimed.range,
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.auditLogPath ? { auditLogPath: options.auditLogPath } : {}),
  });
  let node: NodeAgent;
  try {
    node = await startNodeAgent({
      kubeconfigPath,
      dataDir: path.join(dataDir, 'node'),
      imageMap: [...(options.imageMap ?? []), ...PROJECT_IMAGES],
      clusterIpRange: claimed.range,
      ...(options.log ? { log: options.log } : {}),
      ...(options.volumeSyncPeriodMs !== undefined ? { volumeSyncPeriodMs: options.volumeSyncPeriodMs } : {}),
      ...(options.certsDir ? { certsDir: path.resolve(options.certsDir) } : {}),
      ...(options.strictNodePulls !== undefined ? { strictNodePulls: options.strictNodePulls } : {}),
    });
  } catch (error) {
    await apiServer.stop();
    await claimed.release();
    throw error;
  }
  return {
    kubeconfigPath,
    dataDir,
    apiServer,
    node,
    clusterIpRange: claimed.range,
    async stop() {
      await node.stop();
      await apiServer.stop();
      await claimed.release();
    },
  };
}
