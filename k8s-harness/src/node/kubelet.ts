// The kubelet: schedules unassigned pods onto this node (the only one), runs a PodWorker per pod
// bound here, hands out pod IPs, keeps every pod's hosts file in step with the Services, and
// answers the log endpoint's lookups.
import type { V1Endpoints, V1Pod, V1Service } from '@kubernetes/client-node';
import type { EventRecorder } from './events.ts';
import { serviceRecords, type ServiceRecord } from './hosts.ts';
import { allocate, type Cidr } from './ipam.ts';
import { clusterAddress } from './services.ts';
import { errorMessage, isNotFound, mergePatch, type Cache, type Kube } from './kube.ts';
import { HostMountPoints } from './mountpoints.ts';
import { isTerminalPod } from './owners.ts';
import type { PodWorkerDeps } from './pod-shared.ts';
import { PodWorker } from './pod-worker.ts';
import type { Puller } from './puller.ts';
import type { HostPathRoots } from './node-root.ts';
import type { ImageMapping } from './types.ts';
import type { VolumeSources } from './volumes.ts';

export interface KubeletOptions {
  kube: Kube;
  nodeName: string;
  dataDir: string;
  hostPaths: HostPathRoots;
  imageMap: readonly ImageMapping[];
  podRange: Cidr;
  serviceRange: Cidr;
  events: EventRecorder;
  puller: Puller;
  volumeSources: VolumeSources;
  pods: Cache<V1Pod>;
  services: Cache<V1Service>;
  endpoints: Cache<V1Endpoints>;
  volumeSyncPeriodMs: number;
  log: (line: object) => void;
}

export class Kubelet {
  readonly #options: KubeletOptions;
  readonly #workers = new Map<string, PodWorker>();
  readonly #binding = new Set<string>();
  readonly #ips = new Map<string, string>();
  readonly #mountPoints = new HostMountPoints();
  #lastIP: string | undefined;
  #records: ServiceRecord[] = [];
  #hostsTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: KubeletOptions) {
    this.#options = options;
  }

  start(): void {
    const { pods, services, endpoints } = this.#options;
    // Pods that ran here before keep their addresses.
    for (const pod of pods.list()) {
      if (pod.spec?.nodeName === this.#options.nodeName && pod.status?.podIP && pod.metadata?.uid) this.#ips.set(pod.metadata.uid, pod.status.podIP);
    }
    this.#records = this.#serviceRecords();
    pods.on((pod, event) => this.#onPod(pod, event));
    services.on(() => this.#refreshHosts());
    endpoints.on((ep) => {
      if (ep.metadata?.labels?.['service.kubernetes.io/headless'] !== undefined) this.#refreshHosts();
    });
    for (const pod of pods.list()) this.#onPod(pod, 'add');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#hostsTimer);
    await Promise.all([...this.#workers.values()].map((w) => w.shutdown(2000)));
  }

  /** For the log endpoint. */
  logFile(namespace: string, pod: string, container: string, previous: boolean): { file: string; done: () => boolean } | { status: number; message: string } {
    const worker = [...this.#workers.values()].find((w) => w.namespace === namespace && w.name === pod);
    if (!worker) return { status: 404, message: `pod "${namespace}/${pod}" is not running on node "${this.#options.nodeName}"` };
    return worker.logFile(container, previous);
  }

  #deps(): PodWorkerDeps {
    const o = this.#options;
    return {
      kube: o.kube,
      nodeName: o.nodeName,
      hostIP: '127.0.0.1',
      dataDir: o.dataDir,
      hostPaths: o.hostPaths,
      imageMap: o.imageMap,
      events: o.events,
      puller: o.puller,
      mountPoints: this.#mountPoints,
      volumeSources: o.volumeSources,
      services: () => o.services.list(),
      serviceAddress: (s) => clusterAddress(s, o.serviceRange),
      serviceRecords: () => this.#records,
      allocateIP: (uid) => this.#allocateIP(uid),
      volumeSyncPeriodMs: o.volumeSyncPeriodMs,
      log: o.log,
    };
  }

  #onPod(pod: V1Pod, event: 'add' | 'update' | 'delete'): void {
    if (this.#stopped) return;
    const uid = pod.metadata?.uid ?? '';
    const existing = this.#workers.get(uid);
    if (event === 'delete') {
      if (existing) {
        this.#workers.delete(uid);
        void existing.remove().finally(() => this.#ips.delete(uid));
      } else {
        this.#ips.delete(uid);
      }
      return;
    }
    if (existing) {
      existing.update(pod);
      return;
    }
    const nodeName = pod.spec?.nodeName;
    if (!nodeName) {
      const scheduler = pod.spec?.schedulerName ?? 'default-scheduler';
      if (scheduler === 'default-scheduler' && !isTerminalPod(pod) && !pod.metadata?.deletionTimestamp) void this.#bind(pod);
      return;
    }
    if (nodeName !== this.#options.nodeName) return;
    const worker = new PodWorker(pod, this.#deps());
    this.#workers.set(uid, worker);
    worker.start();
    if (pod.metadata?.deletionTimestamp) worker.update(pod);
  }

  /** The scheduler's part: bind through pods/binding, or set spec.nodeName where that is not served. */
  async #bind(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    if (this.#binding.has(uid)) return;
    this.#binding.add(uid);
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    const nodeName = this.#options.nodeName;
    try {
      try {
        await this.#options.kube.core.createNamespacedPodBinding({
          name,
          namespace,
          body: { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace, uid }, target: { apiVersion: 'v1', kind: 'Node', name: nodeName } },
        });
      } catch (error) {
        const code = (error as { code?: number }).code;
        if (code !== 404 && code !== 405) throw error;
        if (isNotFound(error) && !(await this.#stillThere(namespace, name, uid))) return;
        await this.#options.kube.core.patchNamespacedPod({ name, namespace, body: { spec: { nodeName } } }, mergePatch);
      }
      this.#options.events.emit({ ...pod, apiVersion: 'v1', kind: 'Pod' }, 'Normal', 'Scheduled', `Successfully assigned ${namespace}/${name} to ${nodeName}`);
    } catch (error) {
      this.#options.log({ msg: 'binding failed', pod: `${namespace}/${name}`, error: errorMessage(error) });
      setTimeout(() => {
        this.#binding.delete(uid);
        const current = this.#options.pods.get(namespace, name);
        if (current && current.metadata?.uid === uid) this.#onPod(current, 'update');
      }, 1000);
      return;
    }
    setTimeout(() => this.#binding.delete(uid), 30_000).unref();
  }

  async #stillThere(namespace: string, name: string, uid: string): Promise<boolean> {
    try {
      const pod = await this.#options.kube.core.readNamespacedPod({ name, namespace });
      return pod.metadata?.uid === uid;
    } catch {
      return false;
    }
  }

  #allocateIP(uid: string): string {
    const known = this.#ips.get(uid);
    if (known) return known;
    const used = new Set(this.#ips.values());
    for (const pod of this.#options.pods.list()) if (pod.status?.podIP && pod.spec?.nodeName === this.#options.nodeName) used.add(pod.status.podIP);
    const ip = allocate(this.#options.podRange, used, this.#lastIP);
    if (!ip) throw new Error('the pod address range is exhausted');
    this.#lastIP = ip;
    this.#ips.set(uid, ip);
    return ip;
  }

  #serviceRecords(): ServiceRecord[] {
    const range = this.#options.serviceRange;
    return serviceRecords(this.#options.services.list(), this.#options.endpoints.list(), (s) => clusterAddress(s, range));
  }

  #refreshHosts(): void {
    if (this.#hostsTimer) return;
    this.#hostsTimer = setTimeout(() => {
      this.#hostsTimer = undefined;
      if (this.#stopped) return;
      this.#records = this.#serviceRecords();
      for (const worker of this.#workers.values()) void worker.writeHosts();
    }, 20);
  }
}
