// A one-node cluster for the integration tests: the API server and this agent in a temporary
// directory, with client-node and kubectl pointed at it.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '@nixery/test-support';
import { startApiServer, type ApiServer } from '../apiserver/index.ts';
import { serviceAddress, startNodeAgent } from './index.ts';
import { connect, type Kube } from './kube.ts';
import type { ImageMapping, NodeAgent } from './types.ts';

export const HERE = import.meta.dirname;
export const TINY_HTTP = 'example.org/tiny-http';
export const BUSYBOX_IMAGE = 'example.org/busybox';

/** The images the suites run: the tiny HTTP server fixture and busybox (its applet name comes as the first arg). */
export const TEST_IMAGES: ImageMapping[] = [
  { image: TINY_HTTP, command: [process.execPath, path.join(HERE, 'fixtures/tiny-http.mjs')] },
  { image: BUSYBOX_IMAGE, command: ['/usr/bin/busybox'] },
];

export interface Cluster {
  api: ApiServer;
  agent: NodeAgent;
  kube: Kube;
  dir: string;
  dataDir: string;
  logs: object[];
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  namespace(name: string): Promise<string>;
  /** where a Service is reached from this machine (its ClusterIP, or that address's loopback twin) */
  serviceAddress(namespace: string, name: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Suites that may run at the same time on one machine pass different `clusterIpRange`s: Service
 * listeners and pod addresses (derived from the range) then never collide.
 */
export async function startCluster(clusterIpRange: string, imageMap: ImageMapping[] = TEST_IMAGES, options: { certsDir?: string; strictNodePulls?: boolean } = {}): Promise<Cluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-it-'));
  const api = await startApiServer({ dataDir: path.join(dir, 'api'), serviceClusterIpRange: clusterIpRange });
  const logs: object[] = [];
  const dataDir = path.join(dir, 'node');
  let agent: NodeAgent;
  try {
    agent = await startNodeAgent({ kubeconfigPath: api.kubeconfigPath, dataDir, imageMap, clusterIpRange, log: (line) => logs.push(line), ...options });
  } catch (error) {
    await api.stop();
    throw error;
  }
  const kube = connect(api.kubeconfigPath);
  return {
    api,
    agent,
    kube,
    dir,
    dataDir,
    logs,
    kubectl(args, input) {
      return run('kubectl', ['--kubeconfig', api.kubeconfigPath, '--cache-dir', path.join(dir, 'kube-cache'), ...args], { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
    },
    async namespace(name) {
      await kube.core.createNamespace({ body: { metadata: { name } } });
      return name;
    },
    async serviceAddress(namespace, name) {
      const service = await kube.core.readNamespacedService({ namespace, name });
      const address = serviceAddress(service, clusterIpRange);
      if (!address) throw new Error(`service ${namespace}/${name} has no address`);
      return address;
    },
    async stop() {
      await agent.stop();
      await api.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
