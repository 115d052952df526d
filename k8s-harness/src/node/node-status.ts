// The Node object: registered at start, its Ready condition refreshed as a heartbeat, and the
// kubelet endpoint (the log server's port) published for the API server's log proxy.
import os from 'node:os';
import type { V1Node, V1NodeCondition } from '@kubernetes/client-node';
import { errorMessage, isConflict, isNotFound, mergePatch, type Kube } from './kube.ts';

export const KUBELET_VERSION = 'v1.31.0-nixery-node';
const HEARTBEAT_MS = 10_000;

export interface NodeRegistration {
  stop(): void;
}

export function nodeObject(nodeName: string, podCIDR: string): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: nodeName,
      labels: {
        'kubernetes.io/hostname': nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
      },
    },
    spec: { podCIDR, podCIDRs: [podCIDR] },
  };
}

export function nodeStatus(nodeName: string, kubeletPort: number, now: Date, readySince: Date): NonNullable<V1Node['status']> {
  const condition = (type: string, status: string, reason: string, message: string): V1NodeCondition => ({
    type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: readySince,
  });
  const capacity = { cpu: '2', memory: '4Gi', pods: '110', 'ephemeral-storage': '20Gi' };
  return {
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
    ],
    addresses: [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: nodeName },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: kubeletPort } },
    capacity,
    allocatable: capacity,
    nodeInfo: {
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      operatingSystem: 'linux',
      osImage: 'nixery-node (local processes)',
      kernelVersion: os.release(),
      kubeletVersion: KUBELET_VERSION,
      kubeProxyVersion: KUBELET_VERSION,
      containerRuntimeVersion: 'nixery-node://0.1.0',
      machineID: '',
      systemUUID: '',
      bootID: '',
    },
  };
}

export async function registerNode(kube: Kube, nodeName: string, podCIDR: string, kubeletPort: number, log: (line: object) => void): Promise<NodeRegistration> {
  const readySince = new Date(Math.floor(Date.now() / 1000) * 1000);
  const create = async () => {
    try {
      await kube.core.createNode({ body: nodeObject(nodeName, podCIDR) });
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  };
  const publish = async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const body = { status: nodeStatus(nodeName, kubeletPort, now, readySince) };
    try {
      await kube.core.patchNodeStatus({ name: nodeName, body }, mergePatch);
    } catch (error) {
      // Deleted while running: register again, as a kubelet does.
      if (!isNotFound(error)) throw error;
      await create();
      await kube.core.patchNodeStatus({ name: nodeName, body }, mergePatch);
    }
  };
  await create();
  await publish();
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped) return;
    publish().catch((error: unknown) => {
      if (!stopped) log({ msg: 'node heartbeat failed', error: errorMessage(error) });
    });
  }, HEARTBEAT_MS);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
