// A one-node cluster for the integration tests: the API server and this agent in a temporary
// directory, client-node and kubectl pointed at it, and a bounded wait.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer, type ApiServer } from '../apiserver/index.ts';
import { serviceAddress, startNodeAgent } from './index.ts';
import { connect, type Kube } from './kube.ts';
import type { ImageMapping, NodeAgent } from './types.ts';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../..');
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
export async function startCluster(clusterIpRange: string, imageMap: ImageMapping[] = TEST_IMAGES): Promise<Cluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-it-'));
  const api = await startApiServer({ dataDir: path.join(dir, 'api'), serviceClusterIpRange: clusterIpRange });
  const logs: object[] = [];
  const dataDir = path.join(dir, 'node');
  let agent: NodeAgent;
  try {
    agent = await startNodeAgent({ kubeconfigPath: api.kubeconfigPath, dataDir, imageMap, clusterIpRange, log: (line) => logs.push(line) });
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
      return new Promise((resolve) => {
        const child = execFile('kubectl', ['--kubeconfig', api.kubeconfigPath, '--cache-dir', path.join(dir, 'kube-cache'), ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
          const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        });
        child.stdin?.end(input ?? '');
      });
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

/** Polls `probe` until it returns a value (not undefined), failing with `what` and the last value after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
