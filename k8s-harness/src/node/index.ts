// The node agent: a kubelet, the workload controllers (Deployment, ReplicaSet, Job, DaemonSet), Endpoints,
// Service networking and claim binding for a one-node cluster whose pods are local processes.
// It is only a client of the API server: every read is a list+watch, every write an API call.
import fs from 'node:fs/promises';
import {
  type V1DaemonSet,
  type V1Deployment,
  type V1Endpoints,
  type V1Job,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1ReplicaSet,
  type V1Service,
} from '@kubernetes/client-node';
import { startClaimController } from './claim-controller.ts';
import type { Caches, ControllerContext } from './controller-context.ts';
import { startDaemonSetController } from './daemonset-controller.ts';
import { startDeploymentController } from './deployment-controller.ts';
import { readyBackends } from './endpoints.ts';
import { startEndpointsController } from './endpoints-controller.ts';
import { eventRecorder } from './events.ts';
import { registryAddress, serviceRecords } from './hosts.ts';
import { intToIp, loopbackCidr, podRangeBeside } from './ipam.ts';
import { startJobController } from './job-controller.ts';
import { Cache, connect, errorMessage, isNotFound, type Kube, type WorkQueue } from './kube.ts';
import { Kubelet } from './kubelet.ts';
import { DEFAULT_VOLUME_SYNC_PERIOD_MS } from './pod-shared.ts';
import { startLogServer } from './log-server.ts';
import { CONTAINERD_CERTS_DIR, hostPathOnNode, nodeRootDir, prepareNodeRoot, type HostPathRoots } from './node-root.ts';
import { registerNode } from './node-status.ts';
import { ServiceProxy } from './proxy.ts';
import { DEFAULT_STRICT_NODE_PULLS, Puller, PullError } from './puller.ts';
import { startReplicaSetController } from './replicaset-controller.ts';
import { startServiceController } from './service-controller.ts';
import { clusterAddress } from './services.ts';
import type { NodeAgent, NodeAgentOptions } from './types.ts';
import { VolumeError, type VolumeSources } from './volumes.ts';

export type { ImageMapping, NodeAgent, NodeAgentOptions } from './types.ts';

export const DEFAULT_CLUSTER_IP_RANGE = '127.96.0.0/16';

/**
 * Where a Service is reached from this machine: its ClusterIP when that is a loopback address,
 * else that address's loopback twin in the agent's range (10.96.0.12 → 127.96.0.12 by default).
 */
export function serviceAddress(service: V1Service, clusterIpRange: string = DEFAULT_CLUSTER_IP_RANGE): string | undefined {
  return clusterAddress(service, loopbackCidr(clusterIpRange));
}

function caches(kube: Kube, log: (line: object) => void): Caches {
  return {
    pods: new Cache<V1Pod>(kube, '/api/v1/pods', () => kube.core.listPodForAllNamespaces(), log),
    replicaSets: new Cache<V1ReplicaSet>(kube, '/apis/apps/v1/replicasets', () => kube.apps.listReplicaSetForAllNamespaces(), log),
    deployments: new Cache<V1Deployment>(kube, '/apis/apps/v1/deployments', () => kube.apps.listDeploymentForAllNamespaces(), log),
    daemonSets: new Cache<V1DaemonSet>(kube, '/apis/apps/v1/daemonsets', () => kube.apps.listDaemonSetForAllNamespaces(), log),
    jobs: new Cache<V1Job>(kube, '/apis/batch/v1/jobs', () => kube.batch.listJobForAllNamespaces(), log),
    services: new Cache<V1Service>(kube, '/api/v1/services', () => kube.core.listServiceForAllNamespaces(), log),
    endpoints: new Cache<V1Endpoints>(kube, '/api/v1/endpoints', () => kube.core.listEndpointsForAllNamespaces(), log),
    claims: new Cache<V1PersistentVolumeClaim>(kube, '/api/v1/persistentvolumeclaims', () => kube.core.listPersistentVolumeClaimForAllNamespaces(), log),
  };
}

function volumeSources(kube: Kube, claims: Cache<V1PersistentVolumeClaim>): VolumeSources {
  const absentOnNotFound = (error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  };
  return {
    async secret(namespace, name) {
      const secret = await kube.core.readNamespacedSecret({ namespace, name }).catch(absentOnNotFound);
      if (!secret) return undefined;
      return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
    },
    async configMap(namespace, name) {
      const map = await kube.core.readNamespacedConfigMap({ namespace, name }).catch(absentOnNotFound);
      if (!map) return undefined;
      return {
        ...Object.fromEntries(Object.entries(map.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')])),
        ...Object.fromEntries(Object.entries(map.binaryData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
      };
    },
    async pullSecret(namespace, name) {
      const secret = await kube.core.readNamespacedSecret({ namespace, name }).catch(absentOnNotFound);
      if (!secret) return undefined;
      return { name, type: secret.type ?? 'Opaque', data: Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])) };
    },
    async claim(namespace, name) {
      return claims.get(namespace, name) ?? (await kube.core.readNamespacedPersistentVolumeClaim({ namespace, name }).catch(absentOnNotFound));
    },
    async serviceAccountToken(namespace, serviceAccount, request) {
      try {
        const answer = await kube.core.createNamespacedServiceAccountToken({
          namespace,
          name: serviceAccount,
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: {
              audiences: request.audiences,
              expirationSeconds: request.expirationSeconds,
              boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: request.pod.name, uid: request.pod.uid },
            },
          },
        });
        const token = answer.status?.token;
        if (!token) throw new Error('the TokenRequest was answered without a token');
        return { token, expirationTimestamp: new Date(answer.status?.expirationTimestamp ?? Date.now() + request.expirationSeconds * 1000) };
      } catch (error) {
        throw new VolumeError(errorMessage(error));
      }
    },
  };
}

export async function startNodeAgent(options: NodeAgentOptions): Promise<NodeAgent> {
  const log = options.log ?? (() => {});
  const nodeName = options.nodeName ?? 'nixery-node';
  const serviceRange = loopbackCidr(options.clusterIpRange ?? DEFAULT_CLUSTER_IP_RANGE);
  const podRange = podRangeBeside(serviceRange);
  await fs.mkdir(options.dataDir, { recursive: true });
  const kube = connect(options.kubeconfigPath);
  const all = caches(kube, log);
  const cacheList = Object.values(all) as Array<Cache<never>>;
  const stops: Array<() => unknown> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    await Promise.all(cacheList.map((c) => c.start()));
    stops.push(() => Promise.all(cacheList.map((c) => c.stop())));

    const hostPaths: HostPathRoots = { nodeRoot: nodeRootDir(options.dataDir), ...(options.certsDir ? { certsDir: options.certsDir } : {}) };
    await prepareNodeRoot(hostPaths);
    const records = () => serviceRecords(all.services.list(), all.endpoints.list(), (s) => clusterAddress(s, serviceRange));
    const puller = new Puller(
      options.dataDir,
      (registry) => {
        const found = registryAddress(registry, records());
        return 'address' in found ? found.address : new PullError(found.error);
      },
      {
        // containerd's config_path: the certs dir, else the node root's /etc/containerd/certs.d,
        // so that hosts.toml files a pod writes through a hostPath are always what the node reads.
        certsDir: hostPathOnNode(CONTAINERD_CERTS_DIR, hostPaths),
        strict: options.strictNodePulls ?? DEFAULT_STRICT_NODE_PULLS,
        nodePath: (p) => hostPathOnNode(p, hostPaths),
      },
    );
    const kubelet = new Kubelet({
      kube,
      nodeName,
      dataDir: options.dataDir,
      hostPaths,
      imageMap: options.imageMap,
      podRange,
      serviceRange,
      events: eventRecorder(kube, 'kubelet', nodeName),
      puller,
      volumeSources: volumeSources(kube, all.claims),
      pods: all.pods,
      services: all.services,
      endpoints: all.endpoints,
      volumeSyncPeriodMs: options.volumeSyncPeriodMs ?? DEFAULT_VOLUME_SYNC_PERIOD_MS,
      log,
    });
    const logServer = await startLogServer((namespace, pod, container, previous) => kubelet.logFile(namespace, pod, container, previous));
    stops.push(() => logServer.close());
    const proxy = new ServiceProxy((listener) => readyBackends(all.endpoints.get(listener.namespace, listener.service), listener.servicePort), log);
    stops.push(() => proxy.stop());
    stops.push(() => kubelet.stop());
    const node = await registerNode(kube, nodeName, `${intToIp(podRange.base)}/${podRange.bits}`, logServer.port, log);
    stops.push(() => node.stop());

    const ctx: ControllerContext = { kube, caches: all, events: eventRecorder(kube, 'controller-manager', nodeName), nodeName, log };
    const queues: WorkQueue[] = [
      startServiceController(ctx, serviceRange, proxy),
      startEndpointsController(ctx),
      startClaimController(ctx, options.dataDir),
      startReplicaSetController(ctx),
      startDeploymentController(ctx),
      startJobController(ctx),
      startDaemonSetController(ctx),
    ];
    stops.push(() => Promise.all(queues.map((q) => q.stop())));
    kubelet.start();
    log({ msg: 'node agent started', node: nodeName, kubeletPort: logServer.port, serviceRange: options.clusterIpRange ?? DEFAULT_CLUSTER_IP_RANGE, strictNodePulls: options.strictNodePulls ?? DEFAULT_STRICT_NODE_PULLS });
  } catch (error) {
    await stopAll();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
  };
}
